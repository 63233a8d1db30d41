package consumer_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/nats-io/nats.go/jetstream"
)

func itoa(i int) string { return strconv.Itoa(i) }

// waitLeaf waits for the leafnode connection between the sites.
var waitLeaf = bustest.WaitLeaf

func chunkStore(t testing.TB, p *pipeline) *chunk.Store {
	t.Helper()
	s, err := chunk.Open(context.Background(), p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func chunkStream(t testing.TB, p *pipeline) jetstream.Stream {
	t.Helper()
	s, err := p.pubConn.Backup.Stream(context.Background(), bus.ChunkStream)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func streamLastSeq(t testing.TB, s jetstream.Stream) uint64 {
	info, err := s.Info(context.Background())
	if err != nil {
		t.Error(err)
		return 0
	}
	return info.State.LastSeq
}
