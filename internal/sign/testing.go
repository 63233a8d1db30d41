package sign

import "testing"

// Test helpers for every package whose tests sign messages.

// TestKey returns a new key.
func TestKey(t testing.TB) *Signer {
	t.Helper()
	seed, _, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSeed(string(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTrust returns a Trust of the public keys of keys.
func TestTrust(t testing.TB, keys ...*Signer) *Trust {
	t.Helper()
	public := make([]string, len(keys))
	for i, k := range keys {
		public[i] = k.Public()
	}
	tr, err := NewTrust(public...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
