package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 29: "1.5 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMeterFinalLine(t *testing.T) {
	var out bytes.Buffer
	m := NewMeter("export", &out, time.Hour)
	m.SetTotal(2048)
	m.Add(1024)
	m.Finish()
	if got := out.String(); !strings.Contains(got, "export: 1.0 KiB / 2.0 KiB (50%)") {
		t.Fatalf("final line = %q", got)
	}
}
