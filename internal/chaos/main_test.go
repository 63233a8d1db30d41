package chaos_test

import (
	"os"
	"testing"

	"github.com/ferry-dr/ferry/internal/testbed"
)

func TestMain(m *testing.M) {
	// The ferry processes take every option on their command line: a
	// ferry.yaml installed on this machine must not count.
	os.Setenv("FERRY_CONFIG", os.DevNull)
	testbed.Main(m)
}
