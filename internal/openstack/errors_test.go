package openstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferry-dr/ferry/internal/ferry"
	th "github.com/gophercloud/gophercloud/v2/testhelper"
	fake "github.com/gophercloud/gophercloud/v2/testhelper/client"
)

// Error paths that a real Cinder does not produce on demand (rate limits,
// server errors, an expired token) run against gophercloud's test server.

const volID = "6b1b6b1e-1d2a-4c7e-9a51-0d9f5c4a1e11"

func fakeMetadata(fs th.FakeServer) *Metadata {
	return &Metadata{volume: fake.ServiceClient(fs), compute: fake.ServiceClient(fs)}
}

func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		status     int
		header     string
		kind       ErrorKind
		retryAfter time.Duration
	}{
		{404, "", KindNotFound, 0},
		{429, "7", KindRateLimited, 7 * time.Second},
		{413, "3", KindRateLimited, 3 * time.Second},
		{429, "", KindRateLimited, 0},
		{500, "", KindServer, 0},
		{503, "", KindServer, 0},
		{403, "", KindAuth, 0},
		{400, "", KindRejected, 0},
	} {
		t.Run(fmt.Sprint(tc.status, tc.header), func(t *testing.T) {
			fs := th.SetupHTTP()
			defer fs.Teardown()
			fs.Mux.HandleFunc("/volumes/"+volID+"/metadata", func(w http.ResponseWriter, r *http.Request) {
				th.TestMethod(t, r, "POST")
				th.TestJSONRequest(t, r, `{"metadata": {"ferry:status": "ok"}}`)
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, `{"error": "nope"}`)
			})
			err := fakeMetadata(fs).Merge(context.Background(), Target{Volume, volID}, map[string]string{KeyStatus: "ok"})
			var e *APIError
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an APIError", err, err)
			}
			if e.Kind != tc.kind || e.Code != tc.status || e.RetryAfter != tc.retryAfter {
				t.Fatalf("got kind %q code %d retry %v, want %q %d %v", e.Kind, e.Code, e.RetryAfter, tc.kind, tc.status, tc.retryAfter)
			}
			if !strings.Contains(err.Error(), "volume "+volID) {
				t.Fatalf("error does not name the volume: %v", err)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	fs := th.SetupHTTP()
	md := fakeMetadata(fs)
	fs.Teardown() // nothing listens any more
	err := md.Merge(context.Background(), Target{Server, volID}, map[string]string{KeyStatus: "ok"})
	var e *APIError
	if !errors.As(err, &e) || e.Kind != KindUnreachable || e.Code != 0 {
		t.Fatalf("got %v, want an unreachable APIError", err)
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if got := retryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now); got != 90*time.Second {
		t.Fatalf("got %v", got)
	}
	if got := retryAfter("soon", now); got != 0 {
		t.Fatalf("got %v", got)
	}
}

// Nova server metadata takes the same merge-only POST; an ok status removes
// a previous error key with a per-key DELETE, and a missing key is fine.
func TestServerMetadataAndErrorKey(t *testing.T) {
	fs := th.SetupHTTP()
	defer fs.Teardown()
	var deletes atomic.Int32
	fs.Mux.HandleFunc("/servers/"+volID+"/metadata", func(w http.ResponseWriter, r *http.Request) {
		th.TestMethod(t, r, "POST")
		th.TestJSONRequest(t, r, `{"metadata": {"ferry:status": "ok", "ferry:site": "dr"}}`)
		fmt.Fprint(w, `{"metadata": {"ferry:status": "ok", "ferry:site": "dr", "owner": "x"}}`)
	})
	fs.Mux.HandleFunc("/servers/"+volID+"/metadata/ferry:error", func(w http.ResponseWriter, r *http.Request) {
		th.TestMethod(t, r, "DELETE")
		deletes.Add(1)
		w.WriteHeader(http.StatusNotFound)
	})
	st := &ferry.ImageState{Image: ferry.ImageSpec{Pool: "vms", Image: volID + "_disk"}, Status: ferry.StatusOK}
	tg, ok := TargetOf(st)
	if !ok || tg != (Target{Server, volID}) {
		t.Fatalf("target %v %v", tg, ok)
	}
	s := newSyncer(nil, fakeMetadata(fs), SyncOptions{Site: "dr"})
	img := &pendingImage{st: st, target: tg}
	img.md, img.clearErr = StatusMetadata(st, "dr")
	s.write(context.Background(), img)
	if img.attempts != 0 || img.lastKind != "" || deletes.Load() != 1 {
		t.Fatalf("attempts %d kind %q deletes %d", img.attempts, img.lastKind, deletes.Load())
	}
}

// Rate limits and server errors: the syncer waits at least Retry-After,
// backs off exponentially, logs each kind once, and writes in the end.
func TestSyncerBackoff(t *testing.T) {
	fs := th.SetupHTTP()
	defer fs.Teardown()
	var calls atomic.Int32
	answers := []int{429, 429, 500, 500, 200}
	fs.Mux.HandleFunc("/volumes/"+volID+"/metadata", func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		code := answers[min(int(n), len(answers))-1]
		if code == 429 {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(code)
		fmt.Fprint(w, `{"metadata": {}}`)
	})
	var logged strings.Builder
	s := newSyncer(nil, fakeMetadata(fs), SyncOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		Log: newTestLogger(&logged)})
	st := &ferry.ImageState{Image: ferry.ImageSpec{Pool: "volumes", Image: "volume-" + volID}, Status: ferry.StatusRunning}
	img := &pendingImage{st: st, target: Target{Volume, volID}, due: time.Now()}
	img.md, img.clearErr = StatusMetadata(st, "")
	s.images["k"] = img

	var delays []time.Duration
	for calls.Load() < int32(len(answers)) {
		before := time.Now()
		s.write(context.Background(), img)
		if img.attempts > 0 {
			delays = append(delays, img.due.Sub(before))
		}
	}
	if img.attempts != 0 || img.written == "" {
		t.Fatalf("not written in the end: attempts %d", img.attempts)
	}
	// 429 twice: Retry-After (1 s) beats the backoff; then 500: 40 ms (capped).
	if len(delays) != 4 || delays[0] < time.Second || delays[1] < time.Second || delays[2] > time.Second || delays[3] > time.Second {
		t.Fatalf("delays %v", delays)
	}
	out := logged.String()
	if strings.Count(out, `kind="rate limited"`) != 1 || strings.Count(out, `kind="server error"`) != 1 || !strings.Contains(out, "written to OpenStack again") {
		t.Fatalf("log:\n%s", out)
	}
	if s.backoff(1) != 10*time.Millisecond || s.backoff(2) != 20*time.Millisecond || s.backoff(9) != 40*time.Millisecond {
		t.Fatalf("backoff %v %v %v", s.backoff(1), s.backoff(2), s.backoff(9))
	}
}

// An expired token: the API answers 401, gophercloud logs in again (the
// client was made with AllowReauth) and the write goes through.
func TestTokenExpiryReauthenticates(t *testing.T) {
	fs := th.SetupHTTP()
	defer fs.Teardown()
	var logins, writes atomic.Int32
	fs.Mux.HandleFunc("/v3/auth/tokens", func(w http.ResponseWriter, r *http.Request) {
		th.TestMethod(t, r, "POST")
		n := logins.Add(1)
		w.Header().Set("X-Subject-Token", fmt.Sprintf("token-%d", n))
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token": {"expires_at": "2030-01-01T00:00:00Z", "catalog": [
		  {"type": "block-storage", "name": "cinderv3", "endpoints": [
		    {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "%[1]svolume/v3/p1"}]},
		  {"type": "compute", "name": "nova", "endpoints": [
		    {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "%[1]scompute/v2.1"}]}]}}`, fs.Endpoint())
	})
	fs.Mux.HandleFunc("/volume/v3/p1/volumes/"+volID+"/metadata", func(w http.ResponseWriter, r *http.Request) {
		writes.Add(1)
		if r.Header.Get("X-Auth-Token") != "token-2" {
			w.WriteHeader(http.StatusUnauthorized) // token-1 "expired"
			return
		}
		fmt.Fprint(w, `{"metadata": {}}`)
	})
	ao, err := EnvAuth(func(k string) string {
		return map[string]string{"OS_AUTH_URL": fs.Endpoint() + "v3", "OS_USERNAME": "ferry", "OS_PASSWORD": "pw",
			"OS_USER_DOMAIN_NAME": "users", "OS_PROJECT_NAME": "p1", "OS_PROJECT_DOMAIN_NAME": "projects"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if ao.DomainName != "users" || ao.Scope == nil || ao.Scope.DomainName != "projects" || ao.Scope.ProjectName != "p1" {
		t.Fatalf("domains not honoured: %+v scope %+v", ao, ao.Scope)
	}
	c, err := Connect(context.Background(), Config{Env: &ao, Region: "RegionOne"})
	if err != nil {
		t.Fatal(err)
	}
	if err := NewMetadata(c).Merge(context.Background(), Target{Volume, volID}, map[string]string{KeyStatus: "ok"}); err != nil {
		t.Fatal(err)
	}
	if logins.Load() != 2 || writes.Load() != 2 {
		t.Fatalf("logins %d writes %d, want 2 and 2 (a login after the 401)", logins.Load(), writes.Load())
	}
}

func TestTargetOf(t *testing.T) {
	for image, want := range map[string]Target{
		"volume-" + volID:           {Volume, volID},
		volID + "_disk":             {Server, volID},
		volID + "_disk.local":       {},
		"volume-" + volID + "-x":    {},
		"volume-NOT-A-UUID":         {},
		"volume-" + volID + ".snap": {},
		"my-vm-disk":                {},
	} {
		got, ok := TargetOf(&ferry.ImageState{Image: ferry.ImageSpec{Pool: "p", Image: image}})
		if got != want || ok != (want != Target{}) {
			t.Errorf("%s: got %v %v, want %v", image, got, ok, want)
		}
	}
	got, ok := TargetOf(&ferry.ImageState{Image: ferry.ImageSpec{Pool: "p", Image: "anything"}, VolumeID: volID})
	if !ok || got != (Target{Volume, volID}) {
		t.Errorf("volume id not used: %v", got)
	}
}

func TestTruncate(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("a", 300),
		strings.Repeat("é", 200), // 2 bytes each
		strings.Repeat("€", 100), // 3 bytes each
		strings.Repeat("😀", 70),  // 4 bytes each
		"x" + strings.Repeat("😀", 70),
		"bad \xff\xfe utf-8 " + strings.Repeat("z", 300),
	} {
		got := Truncate(s, MaxValueLen)
		if len(got) > MaxValueLen || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Errorf("Truncate(%.20q...) = %d bytes, valid %v: %q", s, len(got), utf8.ValidString(got), got)
		}
		if len(got) < MaxValueLen-6 {
			t.Errorf("Truncate cut too much: %d bytes", len(got))
		}
	}
	if got := Truncate("short é", MaxValueLen); got != "short é" {
		t.Errorf("short string changed: %q", got)
	}
	if got := Truncate("ééé", 3); got != "é" {
		t.Errorf("tiny limit: %q", got)
	}
}

func TestStatusMetadataKeysAreValid(t *testing.T) {
	st := &ferry.ImageState{Status: ferry.StatusFailed, LastSnapshot: "ferry-x", LastSuccess: time.Date(2026, 2, 3, 4, 5, 6, 7, time.FixedZone("x", 3600)),
		Consistency: ferry.CrashConsistent, LastError: strings.Repeat("long error ", 100)}
	md, clear := StatusMetadata(st, "site")
	if clear || md[KeyLastSuccess] != "2026-02-03T03:05:06Z" || md[KeyConsistency] != "crash" || len(md[KeyError]) > MaxValueLen {
		t.Fatalf("%v %v", md, clear)
	}
	for k := range md {
		if !validKey.MatchString(k) {
			t.Errorf("key %q invalid", k)
		}
	}
}

func newTestLogger(w *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
