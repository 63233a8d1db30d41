// Package sign authenticates Ferry's messages end to end: the sending site
// signs a message's subject and body with its ed25519 key (an nkeys seed
// file), and the receiving site acts on it only when the signature checks
// against a key it trusts. The transport (TLS, NATS credentials) keeps
// strangers off the bus; signatures keep a peer that is on it, or a
// compromised leafnode, from speaking for a site. docs/security.md
// says which site signs what.
//
// The signature covers the subject too, so a signed message cannot be
// replayed under another image's subject. Chunks need none: they are
// content-addressed, and the signed extent pages name them by hash.
package sign

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// The headers a signed message carries.
const (
	HeaderSig = "Ferry-Sig" // base64 (raw URL) ed25519 signature
	HeaderKey = "Ferry-Key" // the signer's public key, an nkeys user key (U...)
)

// context separates Ferry's signatures from anything else the key may sign.
const context = "ferry-msg-v1\x00"

// ErrUnauthenticated is what every refusal of Verify wraps.
var ErrUnauthenticated = errors.New("message not authenticated")

// Signer signs messages with one site's key. A nil *Signer signs nothing
// (a setup without keys).
type Signer struct {
	kp     nkeys.KeyPair
	public string
}

// Generate makes a new key and returns its seed (what a key file holds)
// and its public key (what the other site trusts).
func Generate() (seed []byte, public string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", fmt.Errorf("generate a signing key: %w", err)
	}
	if seed, err = kp.Seed(); err != nil {
		return nil, "", err
	}
	public, err = kp.PublicKey()
	return seed, public, err
}

// WriteKeyFile generates a key into a new file at path (mode 0600; an
// existing file is never overwritten) and returns its public key.
func WriteKeyFile(path string) (public string, err error) {
	seed, public, err := Generate()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("signing key %s exists already: Ferry does not overwrite a key (the other site trusts its public key); remove it first to replace it", path)
	}
	if err != nil {
		return "", fmt.Errorf("write signing key: %w", err)
	}
	if _, err := f.Write(append(seed, '\n')); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("write signing key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write signing key %s: %w", path, err)
	}
	return public, nil
}

// LoadKey reads the seed file at path ("": no key, nil Signer).
func LoadKey(path string) (*Signer, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w (make one with ferry keys generate)", err)
	}
	return ParseSeed(strings.TrimSpace(string(raw)))
}

// ParseSeed makes a Signer of an nkeys user seed (SU...).
func ParseSeed(seed string) (*Signer, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("signing key: not an nkeys seed (%v); make one with ferry keys generate", err)
	}
	public, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if !nkeys.IsValidPublicUserKey(public) {
		return nil, fmt.Errorf("signing key: %s is not a user key (U...); make one with ferry keys generate", public)
	}
	return &Signer{kp: kp, public: public}, nil
}

// Public returns the public key ("" for a nil Signer).
func (s *Signer) Public() string {
	if s == nil {
		return ""
	}
	return s.public
}

// Sign adds the signature of msg's subject and body to its headers.
func (s *Signer) Sign(msg *nats.Msg) error {
	if s == nil {
		return nil
	}
	sig, err := s.kp.Sign(signed(msg.Subject, msg.Data))
	if err != nil {
		return fmt.Errorf("sign message on %s: %w", msg.Subject, err)
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header.Set(HeaderSig, base64.RawURLEncoding.EncodeToString(sig))
	msg.Header.Set(HeaderKey, s.public)
	return nil
}

func signed(subject string, data []byte) []byte {
	b := make([]byte, 0, len(context)+len(subject)+1+len(data))
	b = append(b, context...)
	b = append(b, subject...)
	b = append(b, 0)
	return append(b, data...)
}

// Trust is the set of public keys a site accepts messages of one kind from.
// An empty Trust accepts every message, signed or not: a setup without
// keys (one host, loopback only), which the daemons warn of at start.
type Trust struct {
	keys map[string]nkeys.KeyPair
}

// NewTrust parses public keys (nkeys user keys, U...); "" entries are skipped.
func NewTrust(keys ...string) (*Trust, error) {
	t := &Trust{keys: map[string]nkeys.KeyPair{}}
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !nkeys.IsValidPublicUserKey(k) {
			return nil, fmt.Errorf("trusted key %q is not a public signing key (U..., as ferry keys generate prints it)", k)
		}
		kp, err := nkeys.FromPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("trusted key %q: %w", k, err)
		}
		t.keys[k] = kp
	}
	return t, nil
}

// ParseTrust parses a comma-separated list of public keys, as the config
// file and the flags take them.
func ParseTrust(list string) (*Trust, error) { return NewTrust(strings.Split(list, ",")...) }

// Open tells whether t accepts unsigned messages (it trusts no key).
func (t *Trust) Open() bool { return t == nil || len(t.keys) == 0 }

// Verify checks that a message on subject with header h and body data is
// signed by a trusted key. Its error names the key and what to do.
func (t *Trust) Verify(subject string, h nats.Header, data []byte) error {
	if t.Open() {
		return nil
	}
	key, sig64 := h.Get(HeaderKey), h.Get(HeaderSig)
	if key == "" || sig64 == "" {
		return fmt.Errorf("%w: the message on %s carries no signature; this site accepts only messages signed by one of its trusted keys (%s): set the sender's signing key",
			ErrUnauthenticated, subject, t.list())
	}
	kp, ok := t.keys[key]
	if !ok {
		return fmt.Errorf("%w: the message on %s is signed by key %s, which this site does not trust (trusted: %s); if that key is the other site's, add it to the trusted keys",
			ErrUnauthenticated, subject, key, t.list())
	}
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err == nil {
		err = kp.Verify(signed(subject, data), sig)
	}
	if err != nil {
		return fmt.Errorf("%w: the signature of the message on %s by key %s does not match its subject and body (forged or damaged)",
			ErrUnauthenticated, subject, key)
	}
	return nil
}

func (t *Trust) list() string {
	return strings.Join(slices.Sorted(maps.Keys(t.keys)), ", ")
}

// Signed tells a message's signer, for logs: its key, or "unsigned".
func Signed(h nats.Header) string {
	if k := h.Get(HeaderKey); k != "" {
		return k
	}
	return "unsigned"
}
