package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/spf13/pflag"
)

// TestDaemonMetricsOfItsRole: each daemon's /metrics holds its own role's
// series, with its failure reasons at zero from the start, and not the
// other daemon's; and promtool accepts them.
func TestDaemonMetricsOfItsRole(t *testing.T) {
	conn := bustest.Conn(t)
	for role, want := range map[string][2]string{
		"publisher": {`ferry_backup_failures_total{reason="not_found",role="publisher"} 0`, "ferry_backup_applied_bytes_total"},
		"consumer":  {`ferry_backup_failures_total{reason="base_missing",role="consumer"} 0`, "ferry_backup_read_bytes_total"},
	} {
		var df daemonFlags
		df.register(pflag.NewFlagSet(role, pflag.ContinueOnError), role)
		df.metricsListen = "127.0.0.1:0"
		_, srv, err := df.startMetrics(conn, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + srv.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), want[0]+"\n") {
			t.Errorf("the %s's metrics lack %s", role, want[0])
		}
		if strings.Contains(string(body), want[1]) {
			t.Errorf("the %s exports %s, the other daemon's", role, want[1])
		}
		testutil.PromtoolCheckMetrics(t, "the "+role+"'s metrics", body)
	}
}
