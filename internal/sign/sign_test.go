package sign_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/internal/sign/signtest"
	"github.com/nats-io/nats.go"
)

func signedMsg(t *testing.T, s *sign.Signer, subject, body string) *nats.Msg {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = []byte(body)
	if err := s.Sign(msg); err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestVerify(t *testing.T) {
	site, peer := signtest.Key(t), signtest.Key(t)
	trust := signtest.Trust(t, site)
	good := signedMsg(t, site, "ferry.manifest.rbd.vm1", `{"a":1}`)
	if err := trust.Verify(good.Subject, good.Header, good.Data); err != nil {
		t.Fatalf("signed by the trusted key: %v", err)
	}
	byPeer := signedMsg(t, peer, good.Subject, string(good.Data))
	for _, c := range []struct {
		name, subject, body string
		header              nats.Header
		want                string
	}{
		{"unsigned", good.Subject, string(good.Data), nats.Header{}, "carries no signature"},
		{"other key", good.Subject, string(good.Data), byPeer.Header, "does not trust"},
		{"body changed", good.Subject, `{"a":2}`, good.Header, "does not match"},
		{"subject changed", "ferry.manifest.rbd.vm2", string(good.Data), good.Header, "does not match"},
		{"key swapped", good.Subject, string(good.Data), nats.Header{sign.HeaderKey: {site.Public()}, sign.HeaderSig: byPeer.Header[sign.HeaderSig]}, "does not match"},
	} {
		err := trust.Verify(c.subject, c.header, []byte(c.body))
		if !errors.Is(err, sign.ErrUnauthenticated) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a refusal that says %q", c.name, err, c.want)
		}
	}
	if err := trust.Verify(good.Subject, byPeer.Header, good.Data); err == nil || !strings.Contains(err.Error(), peer.Public()) {
		t.Errorf("a refusal of an untrusted key must name it: %v", err)
	}
}

func TestOpenTrustAcceptsAll(t *testing.T) {
	open, err := sign.ParseTrust("")
	if err != nil {
		t.Fatal(err)
	}
	if !open.Open() {
		t.Fatal("an empty trust list must be open")
	}
	if err := open.Verify("ferry.x", nats.Header{}, nil); err != nil {
		t.Fatal(err)
	}
	var none *sign.Signer
	msg := nats.NewMsg("ferry.x")
	if err := none.Sign(msg); err != nil || msg.Header.Get(sign.HeaderSig) != "" {
		t.Fatalf("a nil signer must leave the message as it is: %v %v", err, msg.Header)
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "site.nk")
	public, err := sign.WriteKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Public() != public {
		t.Fatalf("loaded key %s, written %s", s.Public(), public)
	}
	if _, err := sign.WriteKeyFile(path); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("a second write must refuse to overwrite the key: %v", err)
	}
	if _, err := sign.ParseTrust("not-a-key"); err == nil {
		t.Fatal("a trusted key that is no public key must be refused")
	}
	if _, err := sign.ParseTrust(s.Public() + "," + signtest.Key(t).Public()); err != nil {
		t.Fatal(err)
	}
}
