package sessionauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
)

// A provider's discovery is tried when Caddy starts the config and by
// `caddy sessions check`, so that a wrong or unreachable issuer shows
// before a user's first sign-in, which would otherwise be the first to
// ask. Neither stops anything: the provider may only be down for a while,
// and sign-ins retry discovery until it answers (oidc.go).

// checkTimeout bounds each check of a part (a provider, the store, the
// mail server): a part that hangs is a part that fails.
const checkTimeout = 5 * time.Second

// checkDiscovery fetches the provider's discovery document with the
// provider's client, as a sign-in does, and says in a few words what is
// wrong with it. It keeps nothing: the sign-ins discover for themselves.
func checkDiscovery(ctx context.Context, client *http.Client, issuer string) error {
	seen := &lastStatus{next: client.Transport}
	c := *client
	c.Transport = seen
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, &c), issuer)
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

// discoveryError is why discovery failed, for an operator: the issuer
// the document names, the HTTP status, or the network's cause.
func discoveryError(err error, status int) error {
	var mismatch *oidc.IssuerMismatchError
	switch {
	case errors.As(err, &mismatch):
		return fmt.Errorf("wrong issuer: the discovery document says %q, the config %q (they must match exactly)", mismatch.Discovered, mismatch.Provided)
	case status != 0 && status != http.StatusOK:
		return fmt.Errorf("the discovery URL answered HTTP %d %s", status, http.StatusText(status))
	case status == http.StatusOK:
		return fmt.Errorf("not a discovery document: %s", strings.TrimPrefix(err.Error(), "oidc: "))
	}
	return errors.New(networkCause(err))
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

// providerCheck is one provider to try at start, and whose log says so.
type providerCheck struct {
	name, issuer string
	client       *http.Client
	logger       *zap.Logger
}

// checkProviders tries each provider's discovery at once, each for at
// most checkTimeout, and logs a warning naming each one that failed and
// why. It returns when all are done; nothing is logged for a config
// that ended meanwhile (ctx done).
func checkProviders(ctx context.Context, checks []providerCheck) {
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			err := checkDiscovery(cctx, c.client, c.issuer)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				c.logger.Warn("OIDC provider's discovery failed at start: sign-ins with it fail until it answers (caddy sessions check tries again)",
					zap.String("provider", c.name), zap.String("issuer", c.issuer), zap.String("reason", err.Error()))
			default:
				c.logger.Info("OIDC provider's discovery answered", zap.String("provider", c.name), zap.String("issuer", c.issuer))
			}
		}()
	}
	wg.Wait()
}
