package sessionauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sessionauth/caddy-sessionauth/email"
	"github.com/sessionauth/caddy-sessionauth/geo"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// checkPart is one line of `caddy sessions check`: a part of the running
// config that sign-ins or requests need, and whether it works now.
type checkPart struct {
	Kind   string `json:"kind"`             // store, oidc, geoip, smtp, webhook
	Name   string `json:"name,omitempty"`   // which one: the store's type, the provider's name
	Target string `json:"target,omitempty"` // where: a path, an address, an issuer, a URL
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"` // what was found, when it works
	Error  string `json:"error,omitempty"`  // why not, when it does not
}

// checkReport is the answer of GET /session-auth/check.
type checkReport struct {
	OK    bool        `json:"ok"`
	Parts []checkPart `json:"parts"`
}

// probe tries one part of the config.
type probe struct {
	part checkPart
	try  func(ctx context.Context) (detail string, err error)
}

// check answers GET /session-auth/check: every part is tried at once,
// each for at most checkTimeout, and the answer lists them in config
// order: 200 when all work, 503 (same body) when one does not, so that
// a monitor needs no JSON to tell.
func (a adminAPI) check(w http.ResponseWriter, r *http.Request, stores []storeRef) error {
	probes := partsToCheck(stores)
	report := checkReport{OK: true, Parts: make([]checkPart, len(probes))}
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
			defer cancel()
			part := p.part
			detail, err := p.try(ctx)
			if part.OK = err == nil; part.OK {
				part.Detail = detail
			} else {
				part.Error = err.Error()
			}
			report.Parts[i] = part
		}()
	}
	wg.Wait()
	status := http.StatusOK
	for _, p := range report.Parts {
		if !p.OK {
			report.OK, status = false, http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, status, report)
}

// partsToCheck lists what the running config uses, each once however
// many sites share it: the stores, then per handler its providers, GeoIP
// database, mail server and webhook.
func partsToCheck(stores []storeRef) []probe {
	var out []probe
	for _, ref := range stores {
		kind, where := ref.h.Store.Type, ref.h.Store.describe() // "file <path>", "redis <addresses>", "redis://…", "memory"
		if where = strings.TrimPrefix(where, kind+" "); where == kind {
			where = ""
		}
		out = append(out, probe{checkPart{Kind: "store", Name: kind, Target: where}, func(ctx context.Context) (string, error) {
			return tryStore(ctx, ref.store, ref.h.Store, ref.h.now())
		}})
	}
	seen := map[string]bool{}
	first := func(key string) bool {
		if seen[key] {
			return false
		}
		seen[key] = true
		return true
	}
	for _, h := range runningHandlers() {
		if h.SignIn != nil {
			for _, c := range h.SignIn.OIDC {
				p := h.oidc.provider(c.Name)
				if p == nil || !first("oidc "+c.Name+" "+c.Issuer) {
					continue
				}
				out = append(out, probe{checkPart{Kind: "oidc", Name: c.Name, Target: c.Issuer}, func(ctx context.Context) (string, error) {
					return "discovery answered", checkDiscovery(ctx, p.client, c.Issuer)
				}})
			}
		}
		if db := h.geo; db != nil && first("geoip "+h.GeoIP) {
			out = append(out, probe{checkPart{Kind: "geoip", Target: h.GeoIP}, func(context.Context) (string, error) {
				return describeGeo(db.Info()), nil
			}})
		}
		if srv := h.mail; srv != nil && first(fmt.Sprintf("smtp %s %s %s", srv.Addr, srv.Username, srv.TLS)) {
			out = append(out, probe{checkPart{Kind: "smtp", Target: srv.Addr}, func(ctx context.Context) (string, error) {
				return describeMail(*srv), srv.Probe(ctx)
			}})
		}
		if h.Notify != nil && h.Notify.URL != "" && first("webhook "+h.Notify.URL) {
			out = append(out, probe{checkPart{Kind: "webhook", Target: withoutSecrets(h.Notify.URL)}, func(context.Context) (string, error) {
				return "configured; not called (deliveries show in the logs and metrics)", nil
			}})
		}
	}
	return out
}

// runningHandlers is a copy of the list of provisioned handlers.
func runningHandlers() []*Handler {
	running.Lock()
	defer running.Unlock()
	return append([]*Handler(nil), running.handlers...)
}

// checkValue is what tryStore writes and reads back.
const checkValue = "session_auth check"

// tryStore writes a record the store forgets within a minute and reads
// it back (taking it away), as an OIDC sign-in does with its state.
func tryStore(ctx context.Context, st session.Store, cfg *StoreConfig, now time.Time) (string, error) {
	key := "check:" + randomString()
	start := time.Now()
	if err := st.Stash(ctx, key, []byte(checkValue), time.Minute, now); err != nil {
		return "", fmt.Errorf("writing: %s", storeFailure(cfg, err))
	}
	v, err := st.Take(ctx, key, now)
	if err != nil {
		return "", fmt.Errorf("reading back what was written: %s", storeFailure(cfg, err))
	}
	if string(v) != checkValue {
		return "", errors.New("read back something other than what was written")
	}
	return fmt.Sprintf("wrote and read back in %s", time.Since(start).Round(time.Millisecond)), nil
}

// storeFailure says why the store failed. go-redis retries a refused
// dial until the deadline: one dial of our own names the network's cause.
func storeFailure(cfg *StoreConfig, err error) string {
	if cfg.Type == "redis" {
		if derr := dialOnce(cfg); derr != nil {
			err = derr
		}
	}
	return networkCause(err)
}

func describeGeo(info geo.Info) string {
	return fmt.Sprintf("loaded: %s, built %s", info.Type, info.Built.Format("2006-01-02"))
}

func describeMail(srv email.Server) string {
	d := "STARTTLS"
	switch srv.TLS {
	case email.TLSImplicit:
		d = "TLS"
	case email.TLSNone:
		d = "no TLS"
	}
	if srv.Username != "" {
		d += ", signed in as " + srv.Username
	}
	return d + "; no mail sent"
}

// withoutSecrets shows a webhook URL by its scheme and host: its path
// and query often hold the receiver's secret (Slack's do).
func withoutSecrets(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	shown := u.Scheme + "://" + u.Host
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		shown += "/…"
	}
	return shown
}
