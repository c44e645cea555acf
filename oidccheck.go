package sessionauth

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/oidc"
)

// A provider's discovery is tried when Caddy starts the config and by
// `caddy sessions check`, so that a wrong or unreachable issuer shows
// before a user's first sign-in, which would otherwise be the first to
// ask. Neither stops anything: the provider may only be down for a while,
// and sign-ins retry discovery until it answers (package oidc).

// checkTimeout bounds each check of a part (a provider, the store, the
// mail server): a part that hangs is a part that fails.
const checkTimeout = 5 * time.Second

// checkDiscovery fetches the provider's discovery document with the
// provider's client, as a sign-in does, and says in a few words what is
// wrong with it (package oidc; a network's cause worded here). It keeps
// nothing: the sign-ins discover for themselves.
func checkDiscovery(ctx context.Context, client *http.Client, issuer string) error {
	err := oidc.CheckDiscovery(ctx, client, issuer)
	var ne *oidc.NetworkError
	if errors.As(err, &ne) {
		return errors.New(networkCause(ne.Err))
	}
	return err
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
