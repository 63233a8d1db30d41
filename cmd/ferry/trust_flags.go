package main

import (
	"fmt"
	"strings"

	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/spf13/pflag"
)

// trustFlags are what a site may do on a message's word: the pools it
// works on, the key it signs with, and the other site's keys it trusts
// (docs/security.md).
type trustFlags struct {
	pools, signingKey, trustedKeys string
}

// register adds the flags of the daemon of section (publisher, consumer);
// other is the site whose keys it trusts.
func (f *trustFlags) register(fs *pflag.FlagSet, section, other string) {
	fs.StringVar(&f.pools, "pools", "", "comma-separated pools this site works on (default: every pool)")
	fs.StringVar(&f.signingKey, "signing-key", "", "nkeys seed file this site signs its messages with (ferry keys generate makes one)")
	fs.StringVar(&f.trustedKeys, "trusted-keys", "", "comma-separated public keys of the "+other+"; its messages signed by none are refused (default: none, every message is accepted)")
	bindConfig(fs, "pools", section+".pools")
	bindConfig(fs, "signing-key", section+".signing_key")
	bindConfig(fs, "trusted-keys", section+".trusted_keys")
}

// load reads the signing key and parses the pools and trusted keys.
func (f *trustFlags) load() (pools []string, signer *sign.Signer, trust *sign.Trust, err error) {
	pools = splitList(f.pools)
	if signer, err = sign.LoadKey(f.signingKey); err != nil {
		return nil, nil, nil, fmt.Errorf("--signing-key: %w", err)
	}
	if trust, err = sign.ParseTrust(f.trustedKeys); err != nil {
		return nil, nil, nil, fmt.Errorf("--trusted-keys: %w", err)
	}
	return pools, signer, trust, nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
