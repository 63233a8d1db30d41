// Package signtest holds test helpers for every package whose tests sign
// messages.
package signtest

import (
	"testing"

	"github.com/ferry-dr/ferry/internal/sign"
)

// Key returns a new key.
func Key(t testing.TB) *sign.Signer {
	t.Helper()
	seed, _, err := sign.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.ParseSeed(string(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Trust returns a Trust of the public keys of keys.
func Trust(t testing.TB, keys ...*sign.Signer) *sign.Trust {
	t.Helper()
	public := make([]string, len(keys))
	for i, k := range keys {
		public[i] = k.Public()
	}
	tr, err := sign.NewTrust(public...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
