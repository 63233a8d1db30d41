package hooks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/nats-io/nats.go"
)

// Notice is what the libvirt hook sends: that libvirtd did OP to a domain.
// It is a plain NATS message, not JetStream: nobody listening is fine.
type Notice struct {
	Host       string    `json:"host"`
	Domain     string    `json:"domain"`
	UUID       string    `json:"uuid,omitempty"`
	InstanceID string    `json:"instance_id,omitempty"`
	Op         string    `json:"op"`
	SubOp      string    `json:"subop,omitempty"`
	Extra      string    `json:"extra,omitempty"`
	Time       time.Time `json:"time"`
}

// NoticeSubject is the subject of hook notices of op on host.
func NoticeSubject(host, op string) string {
	if op != ">" && op != "*" {
		op = bus.Token(op)
	}
	return bus.HookSubject + "." + bus.Token(host) + "." + op
}

// NoticeOptions say how the hook reaches NATS.
type NoticeOptions struct {
	URL     string
	Creds   string
	CA      string // CA bundle for the server's TLS certificate
	Cert    string // TLS client certificate and key
	Key     string
	Timeout time.Duration // bounds connect plus publish
}

// SendNotice publishes n once: one connect attempt, no reconnects, a flush
// bounded by the timeout. The hook runs inside libvirtd's call, so it
// never waits long and never retries.
func SendNotice(n Notice, o NoticeOptions) error {
	deadline := time.Now().Add(o.Timeout)
	opts := []nats.Option{
		nats.Name("ferry-hook"),
		nats.Timeout(o.Timeout),
		nats.NoReconnect(),
		nats.RetryOnFailedConnect(false),
	}
	sec, err := bus.ConnOptions{Creds: o.Creds, CA: o.CA, Cert: o.Cert, Key: o.Key}.Security()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(o.URL, append(opts, sec...)...)
	if err != nil {
		return bus.ConnectError(o.URL, err)
	}
	defer nc.Close()
	raw, _ := json.Marshal(n)
	if err := nc.Publish(NoticeSubject(n.Host, n.Op), raw); err != nil {
		return fmt.Errorf("publish hook notice: %w", err)
	}
	if err := nc.FlushTimeout(max(time.Until(deadline), time.Millisecond)); err != nil {
		return fmt.Errorf("publish hook notice: %w", err)
	}
	return nil
}
