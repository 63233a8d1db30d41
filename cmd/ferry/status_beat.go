package main

import (
	"context"

	"github.com/ferry-dr/ferry/internal/health"
	"github.com/nats-io/nats.go/jetstream"
)

// beat keeps the daemon's health record in js (its own site's domain)
// until the daemon closes, when it records that it stopped; `ferry status`
// reads it at either site.
func (d *daemon) beat(js jetstream.JetStream, o health.Options) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	o.Log = d.log
	go func() {
		defer close(done)
		health.Beat(ctx, js, o)
	}()
	d.closers = append(d.closers, closer{"the health record", func() { cancel(); <-done }})
}
