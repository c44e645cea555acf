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

// storesApp opens the file stores of a config when Caddy starts it. A
// handler's Provision must not open the file: `caddy validate`
// provisions the config too, and would fail on the lock that the
// running Caddy holds. Caddy starts every app that a module of the
// config loaded, so a second `caddy run` on the same file still fails
// at start, within a second, naming the file; a damaged file stops it
// there too.
type storesApp struct {
	mu    sync.Mutex
	files []*session.File
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
	return errors.Join(errs...)
}

// Stop leaves the stores open: the pool closes them when no config
// uses them.
func (*storesApp) Stop() error { return nil }

// openAtStart has the config's app open f when Caddy starts the config.
func openAtStart(ctx caddy.Context, f *session.File) error {
	app, err := ctx.App("session_auth")
	if err != nil {
		return err
	}
	a, ok := app.(*storesApp)
	if !ok {
		return fmt.Errorf("app session_auth is %T, not the session_auth store opener", app)
	}
	a.mu.Lock()
	a.files = append(a.files, f)
	a.mu.Unlock()
	return nil
}

// openNow opens a file store at once, where no Caddy will start it.
func openNow(ps *pooledStore) error {
	if f, ok := ps.Store.(*session.File); ok {
		return f.Open()
	}
	return nil
}

var _ caddy.App = (*storesApp)(nil)
