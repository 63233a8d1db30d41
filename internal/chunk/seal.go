package chunk

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"
)

// A Sealer decides what the chunk store reveals: the address a chunk's raw
// bytes are stored under, and the form its compressed body takes. Without a
// chunk key (Plain) that is today's SHA-256 and the gzip stream itself; with
// one (Keyed) a keyed hash and AES-256-GCM, so the store at rest holds
// neither plaintext nor plaintext hashes, and equal chunks still share one
// address, so dedup keeps working for everyone who holds the same key.
type Sealer interface {
	// Address is the chunk address of raw bytes.
	Address(raw []byte) string
	// Seal returns body as stored under addr, appended to dst (or body
	// itself when nothing is sealed).
	Seal(dst []byte, addr string, body []byte) []byte
	// Open returns the body stored under addr, checked; it may overwrite
	// stored. A chunk of another key (or none) is an error wrapping ErrKey.
	Open(addr string, stored []byte) ([]byte, error)
	// KeyID names the key without revealing it; "" for Plain.
	KeyID() string
}

// ErrKey marks a chunk sealed with another chunk key than this site's, or
// stored with a key while this site has none, or the other way round:
// sending it again cannot help, the sites' key files must agree.
var ErrKey = errors.New("chunk key mismatch")

// Plain is the Sealer without a chunk key.
var Plain Sealer = plain{}

type plain struct{}

func (plain) Address(raw []byte) string                { return Hash(raw) }
func (plain) Seal(_ []byte, _ string, b []byte) []byte { return b }
func (plain) KeyID() string                            { return "" }

func (plain) Open(_ string, stored []byte) ([]byte, error) {
	if len(stored) >= sealOverhead && stored[0] == sealFormat {
		return nil, fmt.Errorf("%w: it is encrypted with chunk key %s, and no chunk key is configured here: give this process the same key file as the site that stored it (chunk.key_file, --chunk-key)",
			ErrKey, hex.EncodeToString(stored[1:1+keyIDSize]))
	}
	return stored, nil
}

// The sealed form of a body:
//
//	format (1 byte) | key id (8) | nonce (12) | AES-256-GCM(body) with tag (16)
//
// The additional data is format | key id | address: a body moved under
// another address, or to a store of another key, does not authenticate.
// A gzip stream starts with 0x1f, so a plain body never passes for sealed.
const (
	sealFormat   = 0x01
	keyIDSize    = 8
	nonceSize    = 12
	headerSize   = 1 + keyIDSize + nonceSize
	sealOverhead = headerSize + 16
	gzipMagic    = 0x1f
)

// Keyed is the Sealer of a chunk key.
type Keyed struct {
	aead  cipher.AEAD
	id    [keyIDSize]byte
	addrs sync.Pool // of hash.Hash: HMAC-SHA-256 under the address key
}

// NewKeyed derives the address key, the encryption key and the key id from
// a 32-byte chunk key with HKDF-SHA-256 under distinct labels, so none of
// them tells anything about another.
func NewKeyed(key []byte) (*Keyed, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("chunk key: %d bytes, want %d", len(key), KeySize)
	}
	derive := func(label string, n int) []byte {
		k, err := hkdf.Key(sha256.New, key, nil, "ferry chunk "+label+" v1", n)
		if err != nil {
			panic(err) // only for lengths beyond 255 hashes
		}
		return k
	}
	block, err := aes.NewCipher(derive("encryption", 32))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &Keyed{aead: aead}
	copy(k.id[:], derive("key id", keyIDSize))
	addrKey := derive("address", 32)
	k.addrs.New = func() any { return hmac.New(sha256.New, addrKey) }
	return k, nil
}

// Address is HMAC-SHA-256 of raw under the address key, in hex: as long
// as a SHA-256, but only holders of the key can tell which data it names.
func (k *Keyed) Address(raw []byte) string {
	h := k.addrs.Get().(hash.Hash)
	defer k.addrs.Put(h)
	h.Reset()
	h.Write(raw)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

func (k *Keyed) KeyID() string { return hex.EncodeToString(k.id[:]) }

// Seal encrypts body under a random nonce. Random, not derived from the
// address: the same address always names the same raw bytes, but not the
// same compressed body (another compression level, or another version of
// the compressor), and one nonce for two bodies would break GCM. 96 random
// bits stay safe for far more chunks than one key will ever seal (2^32
// chunks of 4 MiB are 16 PiB).
func (k *Keyed) Seal(dst []byte, addr string, body []byte) []byte {
	n := len(dst)
	dst = append(dst, sealFormat)
	dst = append(dst, k.id[:]...)
	dst = append(dst, make([]byte, nonceSize)...)
	nonce := dst[n+1+keyIDSize : n+headerSize]
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return k.aead.Seal(dst, nonce, body, k.additional(addr))
}

func (k *Keyed) Open(addr string, stored []byte) ([]byte, error) {
	if len(stored) > 0 && stored[0] == gzipMagic {
		return nil, fmt.Errorf("%w: it was stored without a chunk key, and this process has key %s: give every process of both sites the same chunk key setting (chunk.key_file, --chunk-key), or none",
			ErrKey, k.KeyID())
	}
	if len(stored) < sealOverhead || stored[0] != sealFormat {
		return nil, fmt.Errorf("%w: not a sealed chunk (%d bytes, format byte %#x)", ErrCorrupt, len(stored), firstByte(stored))
	}
	if id := stored[1 : 1+keyIDSize]; !bytes.Equal(id, k.id[:]) {
		return nil, fmt.Errorf("%w: it does not decrypt with the configured chunk key %s: it was stored with key %s; both sites must use the same key file (chunk.key_file, --chunk-key)",
			ErrKey, k.KeyID(), hex.EncodeToString(id))
	}
	nonce, ct := stored[1+keyIDSize:headerSize], stored[headerSize:]
	body, err := k.aead.Open(ct[:0], nonce, ct, k.additional(addr))
	if err != nil {
		return nil, fmt.Errorf("%w: does not authenticate under chunk key %s (damaged, or stored under another address)", ErrCorrupt, k.KeyID())
	}
	return body, nil
}

func (k *Keyed) additional(addr string) []byte {
	ad := make([]byte, 0, 1+keyIDSize+len(addr))
	ad = append(ad, sealFormat)
	ad = append(ad, k.id[:]...)
	return append(ad, addr...)
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// KeySize is the length of a chunk key.
const KeySize = 32

// LoadKey reads a chunk key file: 32 bytes, raw or as 64 hex digits (with
// or without a trailing newline). The file must not be readable by others.
func LoadKey(path string) (*Keyed, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("chunk key file: %w", err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("chunk key file %s is readable by others (mode %v): chmod 600 it (whoever reads it can read every backup in the chunk store)", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chunk key file: %w", err)
	}
	key := data
	if text := strings.TrimSpace(string(data)); len(text) == 2*KeySize {
		if key, err = hex.DecodeString(text); err != nil {
			return nil, fmt.Errorf("chunk key file %s: 64 characters but not hex digits: %v", path, err)
		}
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("chunk key file %s: %d bytes; want %d random bytes or %d hex digits (ferry chunk-key generate FILE writes one)", path, len(data), KeySize, 2*KeySize)
	}
	k, err := NewKeyed(key)
	if err != nil {
		return nil, fmt.Errorf("chunk key file %s: %w", path, err)
	}
	return k, nil
}

// GenerateKey writes a new random chunk key to path as hex, readable only
// by its owner; it does not replace an existing file.
func GenerateKey(path string) (*Keyed, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write chunk key: %w (an existing key file is never replaced: a new key starts new chains)", err)
	}
	if _, err := fmt.Fprintf(f, "%x\n", key); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write chunk key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write chunk key %s: %w", path, err)
	}
	return NewKeyed(key)
}

// SetSealer makes the store address and seal chunks with sl (Plain when
// nil), before the store is used. Both sites must use the same.
func (s *Store) SetSealer(sl Sealer) {
	if sl == nil {
		sl = Plain
	}
	s.seal = sl
}

// Sealer is the store's Sealer.
func (s *Store) Sealer() Sealer { return s.seal }

// Address is the address of raw bytes in this store.
func (s *Store) Address(raw []byte) string { return s.seal.Address(raw) }

// sealed is body as stored under addr; release hands its buffer back once
// the message is sent.
func (s *Store) sealed(addr string, body []byte) (stored []byte, release func()) {
	if s.seal == Plain {
		return body, func() {}
	}
	bp := sealBuffers.Get().(*[]byte)
	*bp = s.seal.Seal((*bp)[:0], addr, body)
	return *bp, func() { sealBuffers.Put(bp) }
}

var sealBuffers = sync.Pool{New: func() any { return new([]byte) }}

// open is the stored bytes of addr unsealed, as a chunk *Error on failure.
func (s *Store) open(addr string, stored []byte) ([]byte, error) {
	body, err := s.seal.Open(addr, stored)
	if err != nil {
		return nil, &Error{Hash: addr, Err: err}
	}
	return body, nil
}
