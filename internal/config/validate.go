package config

import (
	"fmt"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Size is a byte count; the file and the environment accept a plain number
// or one with a KiB, MiB or GiB suffix.
type Size uint64

// ParseSize parses "4194304", "4MiB", "64KiB" or "1GiB".
func ParseSize(s string) (Size, error) {
	num, mult := strings.TrimSpace(s), uint64(1)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > (1<<63)/mult {
		return 0, fmt.Errorf("%q is not a size (write bytes, or e.g. 64KiB, 4MiB)", s)
	}
	return Size(n * mult), nil
}

// validate checks values that parse but cannot work; it needs no files.
func (l *Loaded) validate() Problems {
	var ps Problems
	bad := func(key, format string, args ...any) {
		ps = append(ps, Problem{l.origins[key], key, fmt.Sprintf(format, args...)})
	}
	for _, site := range []struct {
		key string
		c   Ceph
	}{{"ceph.source", l.Ceph.Source}, {"ceph.backup", l.Ceph.Backup}} {
		if strings.HasPrefix(site.c.ID, "client.") {
			bad(site.key+".id", "%q: give the id without the \"client.\" prefix, as rbd's --id takes it", site.c.ID)
		}
	}
	if strings.TrimSpace(l.NATS.URL) == "" {
		bad("nats.url", "empty: name the NATS server, e.g. nats://127.0.0.1:4222")
	}
	for _, u := range strings.Split(l.NATS.URL, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || !oneOf(p.Scheme, "nats", "tls", "ws", "wss") {
			bad("nats.url", "%q is not a NATS URL (want nats://HOST:PORT or tls://HOST:PORT)", bus.RedactURL(u))
		}
	}
	for key, d := range map[string]string{"nats.source_domain": l.NATS.SourceDomain, "nats.backup_domain": l.NATS.BackupDomain} {
		if strings.ContainsAny(d, " .*>\t") {
			bad(key, "%q: a JetStream domain cannot contain spaces, '.', '*' or '>'", d)
		}
	}
	if cs := uint64(l.Publisher.ChunkSize); cs < 64<<10 || cs > 4<<20 || cs&(cs-1) != 0 {
		bad("publisher.chunk_size", "%d: want a power of two from 64KiB to 4MiB", cs)
	}
	if lv := l.Publisher.CompressionLevel; lv < 1 || lv > 9 {
		bad("publisher.compression_level", "%d: want 1 (fastest) to 9 (smallest)", lv)
	}
	if (l.NATS.Cert == "") != (l.NATS.Key == "") {
		bad("nats.cert", "a client certificate needs its key: set both nats.cert and nats.key, or neither")
	}
	if strings.TrimSpace(l.Consumer.Site) == "" {
		bad("consumer.site", "empty: name the backup site (it is recorded with each backup)")
	}
	if l.Consumer.BaseWait <= 0 {
		bad("consumer.base_wait", "%s: want a positive duration, e.g. 30m", l.Consumer.BaseWait)
	}
	if _, err := ferry.ParsePoolMap(l.Consumer.PoolMap); err != nil {
		bad("consumer.pool_map", "%v", err)
	}
	checkHostPort(bad, "publisher.metrics_listen", l.Publisher.MetricsListen, true)
	checkHostPort(bad, "consumer.metrics_listen", l.Consumer.MetricsListen, true)
	if !oneOf(l.Log.Level, "debug", "info", "warn", "error") {
		bad("log.level", "%q: want debug, info, warn or error", l.Log.Level)
	}
	l.validateDaemons(bad)
	return ps
}

// checkHostPort checks a listen address; empty is allowed when mayBeEmpty.
func checkHostPort(bad func(key, format string, args ...any), key, v string, mayBeEmpty bool) {
	if v == "" && mayBeEmpty {
		return
	}
	if _, port, err := net.SplitHostPort(v); err != nil {
		bad(key, "%q: want HOST:PORT, e.g. 127.0.0.1:9731", v)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad(key, "%q: the port must be a number up to 65535", v)
	}
}

// Check is Load plus what only the host can tell: that each file the
// configuration names exists and can be read. `ferry config check` runs it.
func Check(path string, lookupEnv func(string) (string, bool)) (*Loaded, error) {
	l, err := Load(path, lookupEnv)
	if err != nil {
		return l, err
	}
	var ps Problems
	for _, key := range []string{"ceph.source.conf", "ceph.source.keyring", "ceph.backup.conf", "ceph.backup.keyring", "nats.creds", "nats.ca", "nats.cert", "nats.key", "chunk.key_file", "nats_server.server_config"} {
		file, _ := l.Value(key)
		if file == "" {
			continue
		}
		f, err := os.Open(file)
		if err != nil {
			ps = append(ps, Problem{l.origins[key], key, fmt.Sprintf("cannot read %s: %v", file, unwrapPath(err))})
			continue
		}
		_ = f.Close()
	}
	if len(ps) > 0 {
		return l, ps
	}
	return l, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}
