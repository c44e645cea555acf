package sessionauth

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// checkStoreAtStart arranges one connection check of the store when Caddy
// has started the config: Provision dials nothing (`caddy validate` needs
// no Redis), yet an operator should learn at start, not at the first
// sign-in, that the store is out of reach. The check runs in the
// background, once per store, and only warns: the gateway answers 503
// until the store is reachable, and recovers by itself.
func (h *Handler) checkStoreAtStart(ctx caddy.Context, ps *pooledStore) error {
	if f, ok := ps.Store.(*session.File); ok {
		return openAtStart(ctx, f)
	}
	if _, ok := session.As[pinger](ps); !ok {
		return nil // in process: nothing to reach
	}
	events, err := ctx.App("events")
	if err != nil {
		return err
	}
	cfg, logger := h.Store, h.logger
	return events.(*caddyevents.App).On("started", startedHandler(func() {
		ps.checked.Do(func() { go pingStore(ps, cfg, logger) })
	}))
}

// pinger is a store on the network (Redis), which can be asked for an answer.
type pinger interface{ Ping(context.Context) error }

// startedHandler runs a function on Caddy's "started" event.
type startedHandler func()

func (f startedHandler) Handle(context.Context, caddy.Event) error { f(); return nil }

func pingStore(ps *pooledStore, cfg *StoreConfig, logger *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.DialTimeout)+time.Duration(cfg.ReadTimeout))
	defer cancel()
	p, _ := session.As[pinger](ps)
	if err := p.Ping(ctx); err != nil {
		// go-redis retries a refused dial until the deadline: dial once
		// ourselves to name the network's own cause.
		if derr := dialOnce(cfg); derr != nil {
			err = derr
		}
		logger.Warn("cannot reach the session store: requests that need a session get 503 until it answers",
			zap.String("store", cfg.describe()), zap.String("cause", networkCause(err)), zap.Error(err))
		return
	}
	logger.Info("session store reachable", zap.String("store", cfg.describe()))
}

// networkCause says in a few words why a server (the store, a provider)
// did not answer.
func networkCause(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "unknown host"
	}
	return err.Error()
}

// dialOnce opens (and closes) one connection to the store's first
// address, and answers why it could not.
func dialOnce(cfg *StoreConfig) error {
	network, addr := "tcp", ""
	switch {
	case cfg.URL != "":
		var err error
		if network, addr, err = session.RedisAddress(cfg.URL); err != nil {
			return err
		}
	case len(cfg.Addresses) > 0:
		addr = cfg.Addresses[0]
	default:
		return nil
	}
	conn, err := net.DialTimeout(network, addr, time.Duration(cfg.DialTimeout))
	if err != nil {
		return err
	}
	return conn.Close()
}
