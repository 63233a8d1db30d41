package main

import (
	"testing"

	"github.com/ferry-dr/ferry/internal/testbed"
)

// Tests that call testbed.Shared run on the Ceph test bed; the others
// need no Ceph.
func TestMain(m *testing.M) { testbed.Main(m) }
