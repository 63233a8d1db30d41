package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

// Kind is the kind of OpenStack resource whose metadata describes a disk.
type Kind int

const (
	Volume Kind = iota + 1 // a Cinder volume
	Server                 // a Nova server, for its ephemeral root disk
)

// Target is the resource that carries a disk's status.
type Target struct {
	Kind Kind
	ID   string
}

func (t Target) String() string {
	if t.Kind == Server {
		return "server " + t.ID
	}
	return "volume " + t.ID
}

// Both Cinder and Nova enforce these limits on metadata.
var validKey = regexp.MustCompile(`^[a-zA-Z0-9-_:. /]{1,255}$`)

// MaxValueLen is the longest metadata value, in bytes. Cinder and Nova
// count characters; a byte limit is stricter and safe for both.
const MaxValueLen = 255

// Metadata writes and reads resource metadata with the service clients' raw
// requests. Writes merge: keys that are not written stay as they are.
type Metadata struct {
	volume, compute *gophercloud.ServiceClient
}

// NewMetadata returns a metadata client; compute may be nil (no Nova).
func NewMetadata(c *Clients) *Metadata { return &Metadata{volume: c.Volume, compute: c.Compute} }

func (m *Metadata) url(t Target, key ...string) (string, error) {
	var sc *gophercloud.ServiceClient
	parts := []string{"volumes", t.ID, "metadata"}
	switch t.Kind {
	case Volume:
		sc = m.volume
	case Server:
		sc = m.compute
		parts[0] = "servers"
	}
	if sc == nil {
		return "", fmt.Errorf("%s: no endpoint for it in this cloud's catalog", t)
	}
	for _, k := range key {
		parts = append(parts, url.PathEscape(k))
	}
	return sc.ServiceURL(parts...), nil
}

func (m *Metadata) client(t Target) *gophercloud.ServiceClient {
	if t.Kind == Server {
		return m.compute
	}
	return m.volume
}

// Merge sets the keys of md on t and leaves every other key alone (POST
// .../metadata; a PUT, or volumes.Update, would drop the operator's keys).
func (m *Metadata) Merge(ctx context.Context, t Target, md map[string]string) error {
	for k, v := range md {
		if !validKey.MatchString(k) {
			return fmt.Errorf("metadata key %q is not valid for OpenStack", k)
		}
		if len(v) > MaxValueLen {
			return fmt.Errorf("metadata value of %s is %d bytes, more than %d", k, len(v), MaxValueLen)
		}
	}
	u, err := m.url(t)
	if err != nil {
		return err
	}
	_, err = m.client(t).Post(ctx, u, map[string]any{"metadata": md}, nil, &gophercloud.RequestOpts{OkCodes: []int{200}})
	return wrapAPIError(t, "write metadata of", err)
}

// Delete removes key from t; a key that is not there is no error.
func (m *Metadata) Delete(ctx context.Context, t Target, key string) error {
	u, err := m.url(t, key)
	if err != nil {
		return err
	}
	_, err = m.client(t).Delete(ctx, u, &gophercloud.RequestOpts{OkCodes: []int{200, 204}})
	if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		// Cinder and Nova answer 404 both for a missing key and a missing
		// resource; the write before this one has told them apart.
		return nil
	}
	return wrapAPIError(t, "delete metadata key "+key+" of", err)
}

// Get returns all metadata of t.
func (m *Metadata) Get(ctx context.Context, t Target) (map[string]string, error) {
	u, err := m.url(t)
	if err != nil {
		return nil, err
	}
	var body struct {
		Metadata map[string]string `json:"metadata"`
	}
	_, err = m.client(t).Get(ctx, u, &body, nil)
	if err != nil {
		return nil, wrapAPIError(t, "read metadata of", err)
	}
	return body.Metadata, nil
}

// ErrorKind sorts API failures by what the operator (and the retry) should
// do about them.
type ErrorKind string

const (
	KindNotFound    ErrorKind = "not found"    // resource deleted, or in another project
	KindRateLimited ErrorKind = "rate limited" // 413/429: wait Retry-After
	KindAuth        ErrorKind = "auth"         // 401/403: credentials, role or policy
	KindServer      ErrorKind = "server error" // 5xx
	KindRejected    ErrorKind = "rejected"     // other 4xx: state or validation
	KindUnreachable ErrorKind = "unreachable"  // no HTTP answer at all
)

// APIError is a failed metadata call, classified.
type APIError struct {
	Target     Target
	Kind       ErrorKind
	Code       int           // HTTP status, 0 if there was no answer
	RetryAfter time.Duration // from Retry-After, if the API sent one
	Err        error
}

func (e *APIError) Error() string {
	hint := ""
	switch e.Kind {
	case KindNotFound:
		hint = " (deleted, or not visible to this project: check the credentials' project)"
	case KindRateLimited:
		hint = " (rate limited by the API: will retry later)"
	case KindAuth:
		hint = " (check the credentials and that the user has a role that may set metadata)"
	case KindUnreachable:
		hint = " (is the API reachable from here? check the endpoint, region and interface)"
	}
	return e.Err.Error() + hint
}

func (e *APIError) Unwrap() error { return e.Err }

func wrapAPIError(t Target, what string, err error) error {
	if err == nil {
		return nil
	}
	e := &APIError{Target: t, Kind: KindUnreachable, Err: fmt.Errorf("%s %s: %w", what, t, err)}
	var code gophercloud.ErrUnexpectedResponseCode
	var reauth *gophercloud.ErrUnableToReauthenticate
	switch {
	case errors.As(err, &reauth):
		e.Kind, e.Code = KindAuth, http.StatusUnauthorized
	case errors.As(err, &code):
		e.Code = code.Actual
		switch {
		case code.Actual == http.StatusNotFound:
			e.Kind = KindNotFound
		case code.Actual == http.StatusTooManyRequests || code.Actual == http.StatusRequestEntityTooLarge:
			e.Kind = KindRateLimited
			e.RetryAfter = retryAfter(code.ResponseHeader.Get("Retry-After"), time.Now())
		case code.Actual == http.StatusUnauthorized || code.Actual == http.StatusForbidden:
			e.Kind = KindAuth
		case code.Actual >= 500:
			e.Kind = KindServer
		default:
			e.Kind = KindRejected
		}
	}
	return e
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
