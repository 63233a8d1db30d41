package main

import (
	"testing"

	"github.com/ferry-dr/ferry/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }
