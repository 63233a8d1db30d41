package bus

import "github.com/nats-io/nats.go"

// logHandlers say in the log when the connection to NATS drops and when it
// is back; nats.go reconnects by itself meanwhile (Connect).
func (o ConnOptions) logHandlers() []nats.Option {
	if o.Log == nil {
		return nil
	}
	log := o.Log
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil { // nil: closed on purpose
				log.Warn("lost the connection to NATS; reconnecting until it is back", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", RedactURL(nc.ConnectedUrl()))
		}),
		// Else printed on stderr, outside the log (a watch's consumer gone
		// in an outage, say).
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS reports an error", "subject", subject, "error", err)
		}),
	}
}
