package siteinit_test

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/siteinit/siteinittest"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// violations records the permission violations a connection is told of.
type violations struct {
	mu   sync.Mutex
	seen []string
	more chan struct{}
}

func watchViolations(c *bus.Conn) *violations {
	v := &violations{more: make(chan struct{}, 1)}
	c.NC.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if !strings.Contains(err.Error(), "Permissions Violation") {
			return
		}
		v.mu.Lock()
		v.seen = append(v.seen, err.Error())
		v.mu.Unlock()
		select {
		case v.more <- struct{}{}:
		default:
		}
	})
	return v
}

// wait returns once n violations whose text matches re were reported, or
// fails the test after 10 s.
func (v *violations) wait(t *testing.T, re *regexp.Regexp, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		v.mu.Lock()
		got := 0
		for _, s := range v.seen {
			if re.MatchString(s) {
				got++
			}
		}
		v.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-v.more:
		case <-deadline:
			t.Fatalf("%d of %d permission violations matching %s reported; all so far: %q", got, n, re, v.seen)
		}
	}
}

// allStreams are Ferry's streams in each domain, buckets included.
var allStreams = map[string][]string{
	"source": {bus.SnapshotStream},
	"backup": {bus.ChunkStream, bus.ManifestStream, bus.PageStream, bus.ResultStream, bus.RestoreStream,
		"KV_" + bus.StateBucket, "KV_" + bus.LockBucket, "OBJ_" + bus.ScrubBucket},
}

// consumerPurges are the streams the consumer purges by subject in its
// work; NATS permissions cannot tell a purge by subject from a full one.
var consumerPurges = []string{bus.PageStream, bus.ChunkStream, "OBJ_" + bus.ScrubBucket}

// setUpStreams creates both sites' streams as the daemons do, with the
// roles that own them, and puts a message into each stream a role may
// write, so that a purge would show.
// testChunk is the address of the chunk setUpStreams stores.
var testChunk = strings.Repeat("ab", 32)

func setUpStreams(t *testing.T, sites *siteinittest.Sites) (pub, cons *bus.Conn) {
	t.Helper()
	ctx := context.Background()
	pub, cons = sites.Connect(t, bus.RolePublisher), sites.Connect(t, bus.RoleConsumer)
	if err := bus.SetupSource(ctx, pub.Source, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if err := bus.SetupBackup(ctx, cons.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		js      jetstream.JetStream
		subject string
	}{
		{pub.Source, bus.SnapshotSubject + ".rbd.vm"}, {pub.Backup, bus.ManifestSubject + ".rbd.vm"},
		{pub.Backup, bus.ChunkSubject + "." + testChunk}, {pub.Backup, bus.PageSubject + ".rbd.vm"},
		{cons.Backup, bus.ConfirmedSubject + ".rbd.vm"},
	} {
		if _, err := m.js.Publish(ctx, m.subject, []byte("x")); err != nil {
			t.Fatalf("publish to %s: %v", m.subject, err)
		}
	}
	kv, err := cons.Backup.KeyValue(ctx, bus.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := json.Marshal(ferry.ImageState{Image: ferry.ImageSpec{Pool: "rbd", Image: "vm"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "rbd.vm", st); err != nil {
		t.Fatal(err)
	}
	return pub, cons
}

// streamCounts reads every stream's message count, through the operator.
func streamCounts(t *testing.T, c *bus.Conn) map[string]uint64 {
	t.Helper()
	counts := map[string]uint64{}
	for domain, streams := range allStreams {
		js := c.Backup
		if domain == "source" {
			js = c.Source
		}
		for _, name := range streams {
			s, err := js.Stream(context.Background(), name)
			if err != nil {
				t.Fatalf("stream %s (%s): %v", name, domain, err)
			}
			counts[name] = s.CachedInfo().State.Msgs
		}
	}
	return counts
}

// TestRolesCannotPurgeOrDeleteStreams: no role's identity can delete any
// of Ferry's streams or purge them through the JetStream API, at either
// site, by the domain-prefixed API or the plain one; the consumer (the
// backup site's administrator) purges only the streams it purges by
// subject in its work. Every attempt is refused by the server as a
// permission violation, and afterwards every stream still holds what it
// held.
func TestRolesCannotPurgeOrDeleteStreams(t *testing.T) {
	sites := siteinittest.Start(t, false)
	setUpStreams(t, sites)
	operator := sites.Connect(t, bus.RoleOperator)
	before := streamCounts(t, operator)
	for _, role := range bus.Roles() {
		t.Run(string(role), func(t *testing.T) {
			c := sites.Connect(t, role)
			v := watchViolations(c)
			replies, err := c.NC.SubscribeSync(c.NC.NewInbox())
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range []string{"PURGE", "DELETE"} {
				for domain, streams := range allStreams {
					for _, stream := range streams {
						if op == "PURGE" && role == bus.RoleConsumer && domain == "backup" && slices.Contains(consumerPurges, stream) {
							continue
						}
						subjects := []string{"$JS.API.STREAM." + op + "." + stream, "$JS." + domain + ".API.STREAM." + op + "." + stream}
						for _, s := range subjects {
							if err := c.NC.PublishRequest(s, replies.Subject, []byte("{}")); err != nil {
								t.Fatal(err)
							}
						}
						v.wait(t, regexp.MustCompile(`Publish to "\$JS\.(`+domain+`\.)?API\.STREAM\.`+op+`\.`+regexp.QuoteMeta(stream)+`"`), len(subjects))
					}
				}
			}
			if m, err := replies.NextMsg(100 * time.Millisecond); err == nil {
				t.Fatalf("the JetStream API answered a refused request: %s", m.Data)
			}
		})
	}
	after := streamCounts(t, operator)
	for name, n := range before {
		if after[name] != n {
			t.Errorf("stream %s held %d messages, now %d", name, n, after[name])
		}
	}
	if before[bus.ManifestStream] == 0 || before[bus.SnapshotStream] == 0 || before["KV_"+bus.StateBucket] == 0 {
		t.Fatalf("the streams were empty to begin with: %v", before)
	}
}

// TestRolesStayInTheirSubjects: an identity cannot publish or subscribe
// outside its role's subjects (the server refuses with a permission
// violation, and nothing reaches the stream), not even to read others'
// replies. Each case is something an attacker holding that key would try.
func TestRolesStayInTheirSubjects(t *testing.T) {
	sites := siteinittest.Start(t, false)
	setUpStreams(t, sites)
	operator := sites.Connect(t, bus.RoleOperator)
	before := streamCounts(t, operator)
	for _, c := range []struct {
		role     bus.Role
		pub, sub []string
	}{
		{bus.RoleAgent, []string{bus.ManifestSubject + ".rbd.vm", bus.RestoreSubject + ".rbd.vm", bus.ConfirmedSubject + ".rbd.vm", "$JS.backup.API.STREAM.INFO.FERRY_CHUNKS"},
			[]string{"_INBOX.>", bus.ChunkSubject + ".>"}},
		{bus.RolePublisher, []string{bus.ConfirmedSubject + ".rbd.vm", bus.RestoreSubject + ".rbd.vm", "$JS.backup.API.$KV." + bus.StateBucket + ".rbd.vm", "$JS.backup.API.STREAM.UPDATE." + bus.ChunkStream},
			[]string{"_INBOX.>", "_INBOX.ferry-consumer.>"}},
		{bus.RoleConsumer, []string{bus.SnapshotSubject + ".rbd.vm", bus.RestoreSubject + ".rbd.vm", bus.ManifestSubject + ".rbd.vm", "$JS.source.API.STREAM.INFO." + bus.SnapshotStream},
			[]string{"_INBOX.>", "ferry.hook.>"}},
		{bus.RoleOperator, []string{bus.SnapshotSubject + ".rbd.vm", bus.ManifestSubject + ".rbd.vm", "$KV." + bus.StateBucket + ".rbd.vm", "$JS.API.CONSUMER.CREATE." + bus.ChunkStream},
			[]string{"_INBOX.>", bus.ChunkSubject + ".>"}},
		{bus.RoleRestore, []string{bus.ManifestSubject + ".rbd.vm", bus.ConfirmedSubject + ".rbd.vm", "$KV." + bus.StateBucket + ".rbd.vm", "$JS.API.STREAM.UPDATE." + bus.RestoreStream},
			[]string{"_INBOX.>", bus.ManifestSubject + ".>"}},
	} {
		t.Run(string(c.role), func(t *testing.T) {
			conn := sites.Connect(t, c.role)
			v := watchViolations(conn)
			for _, s := range c.pub {
				if err := conn.NC.Publish(s, []byte(`{"forged":true}`)); err != nil {
					t.Fatal(err)
				}
				v.wait(t, regexp.MustCompile(`Publish to "`+regexp.QuoteMeta(localSubject(s, c.role))+`"`), 1)
			}
			for _, s := range c.sub {
				if _, err := conn.NC.SubscribeSync(s); err != nil {
					t.Fatal(err)
				}
				v.wait(t, regexp.MustCompile(`Subscription to "`+regexp.QuoteMeta(s)+`"`), 1)
			}
		})
	}
	after := streamCounts(t, operator)
	for name, n := range before {
		if after[name] != n {
			t.Errorf("stream %s held %d messages, now %d: a refused publish got in", name, n, after[name])
		}
	}
}

// localSubject is s as the role's server reports it: its own domain's API
// prefix is mapped to the plain one first.
func localSubject(s string, role bus.Role) string {
	site := "source"
	if role == bus.RoleConsumer || role == bus.RoleOperator || role == bus.RoleRestore {
		site = "backup"
	}
	if rest, ok := strings.CutPrefix(s, "$JS."+site+".API."); ok {
		if strings.HasPrefix(rest, "$KV.") {
			return rest
		}
		return "$JS.API." + rest
	}
	return s
}

// TestOperatorReadsStatus: the read-only operator identity can read what
// ferry status shows, at the backup site and, across the leafnode, at the
// source site: every stream's and daemon consumer's figures, the image
// states and the lock.
func TestOperatorReadsStatus(t *testing.T) {
	sites := siteinittest.Start(t, false)
	setUpStreams(t, sites)
	for _, site := range []string{"backup", "source"} {
		t.Run("at the "+site+" site", func(t *testing.T) {
			readStatus(t, operatorAt(t, sites, site))
		})
	}
	if v := sites.Violations(); len(v) > 0 {
		t.Fatalf("the operator's reads were refused: %q", v)
	}
}

// readStatus reads what ferry status and ferry status --streams show.
func readStatus(t *testing.T, op *bus.Conn) {
	t.Helper()
	ctx := context.Background()
	lag := bus.ReadLag(ctx, op)
	for _, s := range lag.Streams {
		if s.Err != "" || s.Missing {
			t.Errorf("stream %s (%s): missing %v, error %q", s.Stream, s.Domain, s.Missing, s.Err)
		}
	}
	for _, c := range lag.Consumers {
		if c.Err != "" {
			t.Errorf("consumer %s of %s: %s", c.Consumer, c.Stream, c.Err)
		}
	}
	book, err := state.Open(ctx, op.Backup)
	if err != nil {
		t.Fatal(err)
	}
	if states, err := book.All(ctx); err != nil || len(states) != 1 {
		t.Fatalf("image states: %d, %v", len(states), err)
	}
	if _, err := bus.LockHolder(ctx, op.Backup, bus.ConsumerLock); err != nil {
		t.Fatal(err)
	}
}

// TestConsumerAdministersBackupSite: what the consumer, ferry scrub and
// ferry retention do with the consumer's identity beyond a backup (which
// TestSecureTwoSites runs): scrub records stored, listed, read and
// removed; a corrupt chunk removed so that it is sent again.
func TestConsumerAdministersBackupSite(t *testing.T) {
	sites := siteinittest.Start(t, false)
	_, cons := setUpStreams(t, sites)
	ctx := context.Background()
	obs, err := cons.Backup.ObjectStore(ctx, bus.ScrubBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, "rbd.vm.s1", []byte("record")); err != nil {
		t.Fatal(err)
	}
	if got, err := obs.GetBytes(ctx, "rbd.vm.s1"); err != nil || string(got) != "record" {
		t.Fatalf("get scrub record: %q, %v", got, err)
	}
	if list, err := obs.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("list scrub records: %d, %v", len(list), err)
	}
	if err := obs.Delete(ctx, "rbd.vm.s1"); err != nil {
		t.Fatal(err)
	}
	store, err := chunk.Open(ctx, cons.Backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Remove(ctx, testChunk); err != nil {
		t.Fatal(err)
	}
	if v := sites.Violations(); len(v) > 0 {
		t.Fatalf("the consumer's work was refused: %q", v)
	}
}
