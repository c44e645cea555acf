package sessionauth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// ForwardAuth makes the gateway answer for other proxies in front of
// other apps (nginx auth_request, Traefik ForwardAuth, Caddy's own
// forward_auth) at {endpoints}/verify. It needs base_url: the gateway's
// public address, where those proxies send browsers to sign in.
type ForwardAuth struct {
	// Hosts that a browser may be sent back to after signing in: exact
	// names, or *.example.com for any one label before example.com (as
	// Caddy's host matcher reads it). A `next` on any other host lands on
	// the gateway's own "/".
	AllowHosts []string `json:"allow_hosts,omitempty"`
}

// check reports an allow_hosts entry that is not a host name or a
// wildcard of one.
func (f *ForwardAuth) check() error {
	for _, p := range f.AllowHosts {
		name := strings.TrimPrefix(p, "*.")
		if name == "" || strings.Contains(name, "*") || strings.Contains(name, ":") || !validHost.MatchString(name) {
			return fmt.Errorf("forward_auth allow_hosts %q must be a host name (app.example.com) or *.example.com, without scheme or port", p)
		}
	}
	return nil
}

// allows reports whether host (a URL's host name, no port) is one that
// allow_hosts admits.
func (f *ForwardAuth) allows(host string) bool {
	if f == nil || host == "" {
		return false
	}
	host = strings.ToLower(host)
	for _, p := range f.AllowHosts {
		p = strings.ToLower(p)
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			label, ok := strings.CutSuffix(host, suffix)
			if ok && label != "" && !strings.Contains(label, ".") {
				return true
			}
		} else if host == p {
			return true
		}
	}
	return false
}

// formAction is the form-action sources of the sign-in pages: this origin,
// and the hosts that allow_hosts admits, on either scheme and any port,
// where a sign-in's redirect takes the browser back to its app.
func (f *ForwardAuth) formAction() string {
	sources := []string{"'self'"}
	for _, p := range f.AllowHosts {
		sources = append(sources, "http://"+p+":*", "https://"+p+":*")
	}
	return strings.Join(sources, " ")
}

// signInNext is where a browser goes after signing in: a same-site path
// (safeNext), or with forward_auth an absolute http(s) URL on a host that
// allow_hosts admits, the app that sent the browser here; anything else
// is "/".
func (f *ForwardAuth) signInNext(next string) string {
	if strings.HasPrefix(next, "/") || f == nil {
		return safeNext(next)
	}
	// The same characters are refused as in a path: no backslash, no
	// whitespace or control character anywhere.
	if safeNext("/"+next) == "/" {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Opaque != "" ||
		!validHost.MatchString(u.Host) || !f.allows(u.Hostname()) {
		return "/"
	}
	return next
}

// parseForwardAuth: forward_auth { allow_hosts <host>... }.
func parseForwardAuth(d *caddyfile.Dispenser) (*ForwardAuth, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	f := &ForwardAuth{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "allow_hosts":
			if f.AllowHosts != nil {
				return nil, d.Errf("forward_auth: allow_hosts given more than once")
			}
			f.AllowHosts = d.RemainingArgs()
			if len(f.AllowHosts) == 0 {
				return nil, d.ArgErr()
			}
			if err := f.check(); err != nil {
				return nil, d.Errf("%v", err)
			}
		default:
			return nil, d.Errf("forward_auth: unknown subdirective %q (allow_hosts)", d.Val())
		}
	}
	return f, nil
}

// errForwardAuthBaseURL: the verify endpoint sends browsers to the
// gateway's sign-in on another host, so it must know its public address.
var errForwardAuthBaseURL = errors.New("forward_auth needs base_url: the gateway's public address (https://auth.example.com), " +
	"where other proxies send browsers to sign in")
