package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
)

// NetworkError is a discovery that failed for want of an answer: the
// caller words the cause.
type NetworkError struct{ Err error }

func (e *NetworkError) Error() string { return e.Err.Error() }
func (e *NetworkError) Unwrap() error { return e.Err }

// CheckDiscovery fetches the issuer's discovery document with client, as
// a sign-in does, and says in a few words what is wrong with it: the
// issuer the document names, the HTTP status, a missing endpoint, or a
// *NetworkError. It keeps nothing.
func CheckDiscovery(ctx context.Context, client *http.Client, issuer string) error {
	seen := &lastStatus{next: client.Transport}
	c := *client
	c.Transport = seen
	op, err := gooidc.NewProvider(gooidc.ClientContext(ctx, &c), issuer)
	if err != nil {
		return discoveryError(err, seen.get())
	}
	var doc struct {
		JWKS string `json:"jwks_uri"`
	}
	_ = op.Claims(&doc) // decoded once already by NewProvider
	for _, f := range [][2]string{
		{"authorization_endpoint", op.Endpoint().AuthURL}, {"token_endpoint", op.Endpoint().TokenURL}, {"jwks_uri", doc.JWKS},
	} {
		if f[1] == "" {
			return fmt.Errorf("the discovery document has no %s", f[0])
		}
	}
	return nil
}

// discoveryError is why discovery failed, for an operator.
func discoveryError(err error, status int) error {
	var mismatch *gooidc.IssuerMismatchError
	switch {
	case errors.As(err, &mismatch):
		return fmt.Errorf("wrong issuer: the discovery document says %q, the config %q (they must match exactly)", mismatch.Discovered, mismatch.Provided)
	case status != 0 && status != http.StatusOK:
		return fmt.Errorf("the discovery URL answered HTTP %d %s", status, http.StatusText(status))
	case status == http.StatusOK:
		return fmt.Errorf("not a discovery document: %s", strings.TrimPrefix(err.Error(), "oidc: "))
	}
	return &NetworkError{err}
}

// lastStatus is a transport that remembers the status of the last
// answer it passed on: go-oidc says it only in words.
type lastStatus struct {
	next   http.RoundTripper
	mu     sync.Mutex
	status int
}

func (l *lastStatus) RoundTrip(r *http.Request) (*http.Response, error) {
	next := l.next
	if next == nil {
		next = http.DefaultTransport
	}
	res, err := next.RoundTrip(r)
	if err == nil {
		l.mu.Lock()
		l.status = res.StatusCode
		l.mu.Unlock()
	}
	return res, err
}

func (l *lastStatus) get() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}
