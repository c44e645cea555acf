package sessionauth

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("session_auth", parseCaddyfile)
	httpcaddyfile.RegisterHandlerDirective("session_require", parseRequireCaddyfile)
	// Caddy orders only after its own directives, and each insertion goes
	// right after forward_auth: session_require first, so that session_auth
	// lands between them (forward_auth, session_auth, session_require).
	httpcaddyfile.RegisterDirectiveOrder("session_require", httpcaddyfile.After, "forward_auth")
	httpcaddyfile.RegisterDirectiveOrder("session_auth", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var m Handler
	err := m.UnmarshalCaddyfile(h.Dispenser)
	if h.BlockState != nil {
		h.BlockState[sessionAuthSeen] = true // for session_require after it
	}
	return &m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	session_auth [<matcher>] {
//	    store memory
//	    store file [<path>] {
//	        read_timeout <d>
//	    }
//	    store redis [<redis-url>] {
//	        addresses <host:port>...
//	        master <name>
//	        username <u>
//	        password <p>
//	        db <n>
//	        key_prefix <prefix>
//	        pool_size <n>
//	        dial_timeout <d>
//	        read_timeout <d>
//	        tls_ca <pem-file>
//	        tls_cert <pem-file>
//	        tls_key <pem-file>
//	        tls_server_name <name>
//	    }
//	    cookie [<name>] {
//	        domain <d>
//	        path <p>
//	        same_site lax|strict|none
//	        secure auto|always|never
//	    }
//	    lifetime <duration>
//	    idle_timeout <duration>           # default: the lifetime, at most 720h
//	    touch_interval <duration>
//	    retention <duration>
//	    max_sessions <n> [oldest|least_recent|reject]
//	    login <path>...
//	    endpoints <prefix>
//	    optional
//	    unauthenticated redirect [<url>]
//	    unauthenticated status <code>
//	    header_prefix <prefix>
//	    sign_headers <secret>
//	    geoip <path>
//	    ip_change allow|flag|deny
//	    country_change allow|flag|deny
//	    login_rate <n> <duration>
//	    guess_rate <n> <duration>
//	    cache <duration>
//	    store_unavailable deny|grace <duration>
//	    notify <url> {
//	        secret <s>
//	        events <event>...
//	    }
//	    notify email {
//	        smtp <host:port>
//	        username <u>
//	        password <p>
//	        from <address>
//	        tls starttls|implicit|none
//	        tls_ca <pem-file>
//	        events <event>...
//	    }
//	    base_url <url>
//	    password_url <path-or-url>
//	    link_secret <secret>
//	    api_tokens [max_lifetime <duration>] {
//	        fresh <duration>
//	        max_per_user <n>
//	    }
//	    sign_in {
//	        oidc <name> {
//	            issuer <url>
//	            client_id <id>
//	            client_secret <secret>
//	            scopes <scope>...
//	            label <text>
//	            user_claim <claim>
//	            roles_claim <claim>
//	            allow_users <id>...
//	            allow_domains <domain>...
//	            allow_roles <role>...
//	            link_users <id>... | *
//	            recheck <duration>
//	            pass_access_token
//	            logout_at_provider
//	        }
//	        accounts {
//	            stored
//	            <user-id> <bcrypt-hash> {
//	                email <address>
//	                name <text>
//	                roles <role>...
//	                totp <base32-secret>
//	            }
//	        }
//	        accounts_file <path>
//	        second_factor optional|required
//	    }
//	    forward_auth {
//	        allow_hosts <host>|*.<domain>...
//	    }
//	    admin_role <role>
//	}
//
// Unknown and repeated subdirectives, bad values and impossible
// combinations are errors with the file and line.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		// `session_auth lifetime 24h`: options were meant, on one line.
		return d.Errf("session_auth takes no arguments; options go in a block:\n\tsession_auth {\n\t\t%s\n\t}", strings.Join(append([]string{d.Val()}, d.RemainingArgs()...), " "))
	}
	seen := map[string]int{} // subdirective -> its line
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if _, dup := seen[opt]; dup && opt != "notify" { // notify checks its own kinds
			return d.Errf("%s given more than once", opt)
		}
		seen[opt] = d.Line()
		var err error
		switch opt {
		case "store":
			h.Store, err = parseStore(d)
		case "cookie":
			h.Cookie, err = parseCookie(d)
		case "lifetime":
			err = durationArg(d, &h.Lifetime)
		case "idle_timeout":
			var v caddy.Duration
			err = durationArg(d, &v)
			h.IdleTimeout = &v
		case "touch_interval":
			err = durationArg(d, &h.TouchInterval)
		case "retention":
			err = durationArg(d, &h.Retention)
		case "cache":
			err = durationArg(d, &h.Cache)
		case "max_sessions":
			h.MaxSessions, h.MaxSessionsMode, err = parseMaxSessions(d)
		case "login":
			h.Login = d.RemainingArgs()
			if len(h.Login) == 0 {
				return d.ArgErr()
			}
			for _, p := range h.Login {
				if _, perr := parseLoginPath(p); perr != nil {
					return d.Errf("%v", perr)
				}
			}
		case "endpoints":
			err = stringArg(d, &h.Endpoints)
		case "optional":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Optional = true
		case "unauthenticated":
			h.Unauthenticated, err = parseUnauthenticated(d)
		case "header_prefix":
			err = stringArg(d, &h.HeaderPrefix)
		case "sign_headers":
			err = stringArg(d, &h.SignHeaders)
		case "geoip":
			err = stringArg(d, &h.GeoIP)
		case "ip_change":
			err = choiceArg(d, &h.IPChange, "allow", "flag", "deny")
		case "country_change":
			err = choiceArg(d, &h.CountryChange, "allow", "flag", "deny")
		case "login_rate":
			h.LoginRate, err = rateArgs(d)
		case "guess_rate":
			h.GuessRate, err = rateArgs(d)
		case "store_unavailable":
			h.StoreUnavailable, err = parseStoreUnavailable(d)
		case "notify":
			err = h.parseNotify(d)
		case "base_url":
			err = stringArg(d, &h.BaseURL)
		case "password_url":
			err = stringArg(d, &h.PasswordURL)
		case "link_secret":
			err = stringArg(d, &h.LinkSecret)
		case "api_tokens":
			h.APITokens, err = parseAPITokens(d)
		case "sign_in":
			h.SignIn, err = parseSignIn(d)
		case "forward_auth":
			h.ForwardAuth, err = parseForwardAuth(d)
		case "admin_role":
			err = parseAdminRole(d, &h.AdminRole)
		default:
			return d.Errf("unknown subdirective %q", opt)
		}
		if err != nil {
			return err
		}
	}
	// Check combinations now, so `caddy adapt` and `caddy validate` name
	// the place; applyDefaults on a copy keeps the JSON free of defaults.
	probe := *h
	probe.copyNested()
	probe.applyDefaults()
	if err := probe.check(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			fields := fe.fields
			if _, given := seen["idle_timeout"]; !given && slices.Contains(fields, "idle_timeout") {
				// The author never wrote the idle_timeout at fault: it
				// is the lifetime's, so the lifetime's line is to blame.
				err = fmt.Errorf("%w; idle_timeout defaults to the lifetime (at most 720h)", err)
				fields = append(slices.Clip(fields), "lifetime")
			}
			for _, f := range fields {
				if line, ok := seen[f]; ok {
					return fmt.Errorf("%w, at %s:%d", err, d.File(), line)
				}
			}
		}
		return d.Errf("%v", err)
	}
	return nil
}

// copyNested gives a shallow copy its own nested structs, so defaults
// applied to the copy do not leak into the original.
func (h *Handler) copyNested() {
	if h.Store != nil {
		s := *h.Store
		h.Store = &s
	}
	if h.Cookie != nil {
		c := *h.Cookie
		h.Cookie = &c
	}
}

func stringArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func choiceArg(d *caddyfile.Dispenser, dst *string, allowed ...string) error {
	name := d.Val()
	if err := stringArg(d, dst); err != nil {
		return err
	}
	if oneOf(name, *dst, allowed...) != nil {
		return d.Errf("%s: must be one of %s, got %q", name, strings.Join(allowed, ", "), *dst)
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	v, err := parseDuration(d.Val())
	if err != nil {
		return d.Errf("%s: bad duration %q: %v", name, d.Val(), err)
	}
	if v < 0 {
		return d.Errf("%s: must not be negative", name)
	}
	*dst = caddy.Duration(v)
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// parseDuration is caddy.ParseDuration with errors about the text as
// written: Caddy rewrites "30days" to "720hays" before Go reads it.
func parseDuration(s string) (time.Duration, error) {
	v, err := caddy.ParseDuration(s)
	if err == nil {
		return v, nil
	}
	num := strings.TrimLeft(s, "+-0123456789.")
	unit := strings.TrimRight(num, "0123456789.+-")
	if i := strings.IndexAny(num, "0123456789.+-"); i >= 0 {
		unit = num[:i]
	}
	switch {
	case s == "":
		return 0, errors.New("empty")
	case num == s:
		return 0, errors.New("a duration starts with a number, such as 30m, 24h or 30d")
	case unit == "":
		return 0, errors.New("missing unit; use ms, s, m, h or d, such as 24h or 30d")
	case !slices.Contains([]string{"ns", "us", "µs", "μs", "ms", "s", "m", "h", "d"}, unit):
		return 0, fmt.Errorf("unknown unit %q; use ms, s, m, h or d, such as 24h or 30d", unit)
	}
	return 0, errors.New("not a duration; write it such as 90m, 24h or 30d")
}

func intArg(d *caddyfile.Dispenser, name string, min int) (int, error) {
	n, err := strconv.Atoi(d.Val())
	if err != nil || n < min {
		return 0, d.Errf("%s: %q must be a whole number of at least %d", name, d.Val(), min)
	}
	return n, nil
}

// parseMaxSessions reads `max_sessions <n> [oldest|least_recent|reject]`.
func parseMaxSessions(d *caddyfile.Dispenser) (n *int, mode string, err error) {
	if !d.NextArg() {
		return nil, "", d.ArgErr()
	}
	v, err := intArg(d, "max_sessions", 0)
	if err != nil {
		return nil, "", err
	}
	if d.NextArg() {
		if err := oneOf("max_sessions mode", d.Val(), "oldest", "least_recent", "reject"); err != nil {
			return nil, "", d.Errf("%v", err)
		}
		mode = d.Val()
	}
	if d.NextArg() {
		return nil, "", d.ArgErr()
	}
	return &v, mode, nil
}

func rateArgs(d *caddyfile.Dispenser) (*Rate, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) != 2 {
		return nil, d.ArgErr()
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return nil, d.Errf("%s: count %q must be a positive whole number", name, args[0])
	}
	w, err := parseDuration(args[1])
	if err != nil || w <= 0 {
		return nil, d.Errf("%s: window %q must be a positive duration", name, args[1])
	}
	return &Rate{Count: n, Window: caddy.Duration(w)}, nil
}

func parseUnauthenticated(d *caddyfile.Dispenser) (*Unauthenticated, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	u := &Unauthenticated{}
	switch d.Val() {
	case "redirect":
		u.Redirect = true
		if d.NextArg() {
			u.URL = d.Val()
		}
	case "status":
		if !d.NextArg() {
			return nil, d.ArgErr()
		}
		code, err := intArg(d, "unauthenticated status", 400)
		if err != nil || code > 599 {
			return nil, d.Errf("unauthenticated status %q must be a 4xx or 5xx code", d.Val())
		}
		u.Status = code
	default:
		return nil, d.Errf("unauthenticated: %q must be redirect or status", d.Val())
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	return u, nil
}

func parseStoreUnavailable(d *caddyfile.Dispenser) (*StoreUnavailable, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	su := &StoreUnavailable{Mode: d.Val()}
	switch su.Mode {
	case "deny":
	case "grace":
		if !d.NextArg() {
			return nil, d.Errf("store_unavailable grace needs a duration")
		}
		g, err := parseDuration(d.Val())
		if err != nil || g <= 0 {
			return nil, d.Errf("store_unavailable grace: %q must be a positive duration", d.Val())
		}
		su.Grace = caddy.Duration(g)
	default:
		return nil, d.Errf("store_unavailable: %q must be deny or grace", su.Mode)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	return su, nil
}

func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	s := &StoreConfig{Type: d.Val()}
	switch s.Type {
	case "memory":
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		if d.NextBlock(d.Nesting()) {
			return nil, d.Errf("store memory takes no block")
		}
		return s, nil
	case "file":
		if d.NextArg() {
			s.Path = d.Val()
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			if d.Val() != "read_timeout" || s.ReadTimeout != 0 {
				return nil, d.Errf("store file: unknown or repeated subdirective %q (its block takes read_timeout only)", d.Val())
			}
			if err := durationArg(d, &s.ReadTimeout); err != nil {
				return nil, err
			}
		}
		return s, nil
	case "redis":
	default:
		return nil, d.Errf("store: %q must be file, memory or redis", s.Type)
	}
	if d.NextArg() {
		s.URL = d.Val()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("store redis: %s given more than once", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "addresses":
			s.Addresses = d.RemainingArgs()
			if len(s.Addresses) == 0 {
				return nil, d.ArgErr()
			}
		case "master":
			err = stringArg(d, &s.Master)
		case "username":
			err = stringArg(d, &s.Username)
		case "password":
			err = stringArg(d, &s.Password)
		case "key_prefix":
			err = stringArg(d, &s.KeyPrefix)
		case "db":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			s.DB, err = intArg(d, "db", 0)
			if err == nil && d.NextArg() {
				return nil, d.ArgErr()
			}
		case "pool_size":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			s.PoolSize, err = intArg(d, "pool_size", 1)
			if err == nil && d.NextArg() {
				return nil, d.ArgErr()
			}
		case "tls_ca":
			err = stringArg(d, &s.TLSCA)
		case "tls_cert":
			err = stringArg(d, &s.TLSCert)
		case "tls_key":
			err = stringArg(d, &s.TLSKey)
		case "tls_server_name":
			err = stringArg(d, &s.TLSServerName)
		case "dial_timeout":
			err = durationArg(d, &s.DialTimeout)
		case "read_timeout":
			err = durationArg(d, &s.ReadTimeout)
		default:
			return nil, d.Errf("store redis: unknown subdirective %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	probe := *s
	probe.applyDefaults()
	if err := probe.check(); err != nil {
		return nil, d.Errf("%v", err)
	}
	return s, nil
}

func parseCookie(d *caddyfile.Dispenser) (*CookieConfig, error) {
	c := &CookieConfig{}
	if d.NextArg() {
		c.Name = d.Val()
		if !validCookieName(c.Name) {
			return nil, d.Errf("cookie: %q is not a valid cookie name", c.Name)
		}
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("cookie: %s given more than once", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "domain":
			err = stringArg(d, &c.Domain)
		case "path":
			err = stringArg(d, &c.Path)
		case "same_site":
			err = choiceArg(d, &c.SameSite, "lax", "strict", "none")
		case "secure":
			err = choiceArg(d, &c.Secure, "auto", "always", "never")
		default:
			return nil, d.Errf("cookie: unknown subdirective %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (h *Handler) parseNotify(d *caddyfile.Dispenser) error {
	n := &Notify{}
	if !d.NextArg() {
		return d.ArgErr()
	}
	if d.Val() == "email" {
		return parseNotifyEmail(d, h)
	}
	if h.Notify != nil {
		if h.Notify.URL == d.Val() {
			return d.Errf("notify %s given more than once", d.Val())
		}
		return d.Errf("notify: one webhook per session_auth (%s is already one)", h.Notify.URL)
	}
	n.URL = d.Val()
	if !strings.HasPrefix(n.URL, "https://") && !strings.HasPrefix(n.URL, "http://") {
		return d.Errf("notify: %q must be an http:// or https:// URL", n.URL)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("notify: %s given more than once", opt)
		}
		seen[opt] = true
		switch opt {
		case "secret":
			if err := stringArg(d, &n.Secret); err != nil {
				return err
			}
		case "events":
			n.Events = d.RemainingArgs()
			if len(n.Events) == 0 {
				return d.ArgErr()
			}
			for _, e := range n.Events {
				if err := oneOf("notify event", e, notifyEvents...); err != nil {
					return d.Errf("%v", err)
				}
			}
		default:
			return d.Errf("notify: unknown subdirective %q", opt)
		}
	}
	h.Notify = n
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

// parseAPITokens: api_tokens [max_lifetime <duration>] { fresh <duration>; max_per_user <n> }.
func parseAPITokens(d *caddyfile.Dispenser) (*APITokens, error) {
	t := &APITokens{}
	if d.NextArg() {
		if d.Val() != "max_lifetime" {
			return nil, d.Errf("api_tokens: unknown option %q (max_lifetime)", d.Val())
		}
		if err := durationArg(d, &t.MaxLifetime); err != nil {
			return nil, err
		}
		if t.MaxLifetime <= 0 {
			return nil, d.Errf("api_tokens: max_lifetime must be positive")
		}
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("api_tokens: %s given more than once", opt)
		}
		seen[opt] = true
		switch opt {
		case "fresh":
			if err := durationArg(d, &t.Fresh); err != nil {
				return nil, err
			}
			if t.Fresh <= 0 {
				return nil, d.Errf("api_tokens: fresh must be positive")
			}
		case "max_per_user":
			var v string
			if err := stringArg(d, &v); err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, d.Errf("api_tokens: max_per_user must be a whole number of 1 or more, got %q", v)
			}
			t.MaxPerUser = n
		default:
			return nil, d.Errf("api_tokens: unknown subdirective %q (fresh, max_per_user)", opt)
		}
	}
	return t, nil
}
