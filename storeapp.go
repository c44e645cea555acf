package sessionauth

import (
	"errors"
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessionauth/caddy-sessionauth/session"
)

func init() {
	caddy.RegisterModule(new(storesApp))
}

// storesApp opens the file stores of a config when Caddy starts it, and
// tries its OIDC providers' discovery in the background. A handler's
// Provision must not open the file: `caddy validate` provisions the
// config too, and would fail on the lock that the running Caddy holds
// (nor should validating a config call its providers). Caddy starts
// every app that a module of the config loaded, so a second `caddy run`
// on the same file still fails at start, within a second, naming the
// file; a damaged file stops it there too.
type storesApp struct {
	ctx       caddy.Context // the config's: done when it is unloaded
	mu        sync.Mutex
	files     []*session.File
	providers map[string]providerCheck // by name and issuer: each once, however many sites list it
}

// Provision keeps the config's context for the checks at start.
func (a *storesApp) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	return nil
}

// CaddyModule returns the Caddy module information.
func (*storesApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "session_auth",
		New: func() caddy.Module { return new(storesApp) },
	}
}

// Start opens the config's file stores (those shared with the config
// before, across a reload, are open already).
func (a *storesApp) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, f := range a.files {
		errs = append(errs, f.Open())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(a.providers) > 0 {
		checks := make([]providerCheck, 0, len(a.providers))
		for _, c := range a.providers {
			checks = append(checks, c)
		}
		go checkProviders(a.ctx, checks)
	}
	return nil
}

// Stop leaves the stores open: the pool closes them when no config
// uses them.
func (*storesApp) Stop() error { return nil }

// openAtStart has the config's app open f when Caddy starts the config.
func openAtStart(ctx caddy.Context, f *session.File) error {
	a, err := startApp(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.files = append(a.files, f)
	a.mu.Unlock()
	return nil
}

// checkAtStart has the config's app try the discovery of h's providers
// when Caddy starts the config.
func checkAtStart(ctx caddy.Context, h *Handler) error {
	if len(h.oidc.all()) == 0 {
		return nil
	}
	a, err := startApp(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.providers == nil {
		a.providers = map[string]providerCheck{}
	}
	for _, p := range h.oidc.all() {
		a.providers[p.cfg.Name+" "+p.cfg.Issuer] = providerCheck{name: p.cfg.Name, issuer: p.cfg.Issuer, client: p.client, logger: h.logger}
	}
	return nil
}

// startApp is the config's session_auth app.
func startApp(ctx caddy.Context) (*storesApp, error) {
	app, err := ctx.App("session_auth")
	if err != nil {
		return nil, err
	}
	a, ok := app.(*storesApp)
	if !ok {
		return nil, fmt.Errorf("app session_auth is %T, not the session_auth store opener", app)
	}
	return a, nil
}

// openNow opens a file store at once, where no Caddy will start it.
func openNow(ps *pooledStore) error {
	if f, ok := ps.Store.(*session.File); ok {
		return f.Open()
	}
	return nil
}

var (
	_ caddy.App         = (*storesApp)(nil)
	_ caddy.Provisioner = (*storesApp)(nil)
)
