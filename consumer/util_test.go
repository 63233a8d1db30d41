package consumer_test

import (
	"context"
	"errors"
	"github.com/ferry-dr/ferry/internal/testutil"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

func itoa(i int) string { return strconv.Itoa(i) }

func waitLeaf(t testing.TB, s *server.Server) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if s.NumLeafNodes() == 0 {
			return errors.New("leafnode connection between the sites did not come up")
		}
		return nil
	})
}

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
