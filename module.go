// Package sessionauth is a Caddy v2 HTTP handler that puts server-side
// sessions in front of any upstream app: it checks the session cookie
// against a store, touches activity, captures where and on what each
// session lives, and forwards the identity as headers.
package sessionauth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/email"
	"github.com/sessionauth/caddy-sessionauth/geo"
	"github.com/sessionauth/caddy-sessionauth/session"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the SPEC.
const (
	defaultLifetime      = 720 * time.Hour
	maxDefaultIdle       = 720 * time.Hour // the default idle_timeout is the lifetime, at most this
	defaultTouchInterval = 5 * time.Minute
	defaultRetention     = 720 * time.Hour
	defaultLoginPath     = "/login"
	defaultEndpoints     = "/.auth"
	defaultHeaderPrefix  = "X-Auth-"
)

// Handler is the session_auth middleware. It checks the session cookie on
// every request against the store, forwards the identity to the upstream
// as headers, mints sessions when the upstream hands off a sign-in on a
// login path, and serves the gateway's own pages under `endpoints`.
type Handler struct {
	// Where sessions live: the embedded memory store (default, one
	// instance) or Redis.
	Store *StoreConfig `json:"store,omitempty"`

	// The session cookie's name and attributes.
	Cookie *CookieConfig `json:"cookie,omitempty"`

	// Absolute session lifetime from sign-in. Default 720h (30 days).
	Lifetime caddy.Duration `json:"lifetime,omitempty"`

	// A session ends after this long without a request. Default: the
	// lifetime, at most 720h; 0 turns the idle timeout off.
	IdleTimeout *caddy.Duration `json:"idle_timeout,omitempty"`

	// At most one activity write per session per interval. Default 5m.
	TouchInterval caddy.Duration `json:"touch_interval,omitempty"`

	// How long ended sessions and audit events are kept. Default 720h.
	Retention caddy.Duration `json:"retention,omitempty"`

	// Most active sessions per user; 0 is unlimited. Default 5.
	MaxSessions *int `json:"max_sessions,omitempty"`

	// Which session gives way beyond max_sessions: oldest (default),
	// least_recent, or reject (refuse the new sign-in with 429).
	MaxSessionsMode string `json:"max_sessions_mode,omitempty"`

	// Paths where the upstream may hand off a sign-in with the
	// Session-Login response header; they need no session. Exact match
	// on the cleaned path, a trailing * makes a prefix. Default /login.
	Login []string `json:"login,omitempty"`

	// Prefix of the gateway's own pages (me, logout, sessions).
	// Default /.auth.
	Endpoints string `json:"endpoints,omitempty"`

	// Never reject: identify the user when a session exists and pass
	// the request through anonymously otherwise.
	Optional bool `json:"optional,omitempty"`

	// How requests without a session are answered.
	Unauthenticated *Unauthenticated `json:"unauthenticated,omitempty"`

	// Prefix of the identity headers. Default X-Auth-.
	HeaderPrefix string `json:"header_prefix,omitempty"`

	// Secret for X-Auth-Signature over the method, Host, escaped path, raw
	// query and identity headers (the canonical form is in package
	// signature). {env.*} placeholders are expanded.
	SignHeaders string `json:"sign_headers,omitempty"`

	// Path of a GeoIP2 or GeoLite2 City database.
	GeoIP string `json:"geoip,omitempty"`

	// What an IP change does to a session: allow, flag (default), deny.
	IPChange string `json:"ip_change,omitempty"`

	// What a country change does to a session: allow, flag (default), deny.
	CountryChange string `json:"country_change,omitempty"`

	// Sign-in attempts per client IP. Default 10 per 1m.
	LoginRate *Rate `json:"login_rate,omitempty"`

	// Unknown-token cookies per client IP. Default 100 per 1m.
	GuessRate *Rate `json:"guess_rate,omitempty"`

	// In-process cache of validated sessions; 0 (default) is off.
	Cache caddy.Duration `json:"cache,omitempty"`

	// What to do when the store cannot answer: deny (503, default) or
	// grace: accept sessions this process validated within the period.
	StoreUnavailable *StoreUnavailable `json:"store_unavailable,omitempty"`

	// Webhook for security notifications.
	Notify *Notify `json:"notify,omitempty"`

	// Mail to the user's own address on a new or unusual sign-in
	// (Caddyfile: notify email { … }).
	NotifyEmail *NotifyEmail `json:"notify_email,omitempty"`

	// Where links in notifications point, e.g. https://app.example.com.
	// Default: the request's scheme and Host, and only a Host that one
	// of the server's host matchers accepted (the Host is the client's
	// word; a site without a host matcher gets no links unless this is
	// set).
	BaseURL string `json:"base_url,omitempty"`

	// Keys the "Not you?" links (and which dummy hash an unknown account
	// name is compared with), so that a copy of the store forges none.
	// Several gateways sharing a Redis store must all have the same one.
	// Default: a random key made at first start in Caddy's data directory
	// (session_auth/link.key). {env.*} placeholders are expanded.
	LinkSecret string `json:"link_secret,omitempty"`

	// Where users change their password (the app's page): a path on the
	// site (joined to base_url when set) or an absolute URL. The "Not
	// you?" pages link to it. Default: no link.
	PasswordURL string `json:"password_url,omitempty"`

	// Personal access tokens: `Authorization: Bearer sat_…` is a session
	// of kind token, created on the sessions page. Off unless given.
	APITokens *APITokens `json:"api_tokens,omitempty"`
	// The gateway's own sign-in: OIDC providers and local accounts.
	SignIn *SignIn `json:"sign_in,omitempty"`

	// Answer other proxies (nginx, Traefik, another Caddy) at
	// {endpoints}/verify. Needs base_url. Off unless given.
	ForwardAuth *ForwardAuth `json:"forward_auth,omitempty"`

	// Users with this role get the admin console at {endpoints}/admin
	// (SPEC 17): the store's figures as charts, the latest risk events and
	// failed sign-ins, and sessions found by user id or IP to sign out.
	// Off unless given.
	AdminRole string `json:"admin_role,omitempty"`

	store      session.Store
	storeKey   string
	policy     session.Policy
	limit      session.Limit
	logins     []loginPath
	headers    headerNames
	geo        *geo.DB
	blocked    *blocklist
	grace      *graceCache           // nil unless store_unavailable grace
	cache      *sessionCache         // nil unless cache, with Redis
	dispatcher *dispatcher           // nil unless notify
	cleanedUp  bool                  // Cleanup ran (only Cleanup reads it)
	hosts      []caddyhttp.MatchHost // the server's host matchers: which Hosts a link may use
	siteTLS    bool                  // the server serves HTTPS: the cookie\'s Secure under secure auto
	site       string                // scheme://host:port of the server, for the admin API\'s set_cookie
	rules      *pathRules            // the server's session_require rules, for paths read otherwise (readings.go)
	logger     *zap.Logger
	metrics    *metrics
	now        func() time.Time
	fullStore  *sometimes    // warnings of refused touches (touchRefused)
	mail       *email.Server // nil unless notify email
	// signInEnabled: the gateway's own sign-in (sign_in, SPEC 11) is
	// configured, so session_require can send a browser to a step-up.
	signInEnabled bool

	feed        session.RevocationFeed // nil unless the store is shared (Redis)
	socketWatch *revocationWatch       // the revocation channel, once a connection is upgraded

	// The parts, each nil when off.
	tokens   *apiTokens // api_tokens
	handoff  *handOff   // always
	notifier *notifier  // notify, notify email
	self     *selfService
	forward  *forwardAuth    // forward_auth
	routes   *endpointRoutes // the routes under endpoints
	signIn   *signInPages    // sign_in (signin_page.go)
	account  *accountPages   // sign_in: the account page (accountpage.go)
	cookies  *cookieRules    // the session cookie and its siblings (cookie.go)
	oidc     *oidcSignIn     // sign-ins at OpenID providers (signin_oidc.go)
	passkeys *passkeySignIn  // sign_in passkeys (signin_passkey.go, passkeypage.go)

	linkKey []byte // keys the "Not you?" links (provisionSecret)
	nameKey []byte // picks an unknown account name's dummy hash
}

// CookieConfig sets the session cookie.
type CookieConfig struct {
	// Cookie name. Default: __Host-session when Secure with no domain and
	// path /, __Secure-session when Secure otherwise, session on plain HTTP.
	Name string `json:"name,omitempty"`
	// Domain attribute; none by default (host-only cookie).
	Domain string `json:"domain,omitempty"`
	// Path attribute. Default /.
	Path string `json:"path,omitempty"`
	// SameSite: lax (default), strict or none.
	SameSite string `json:"same_site,omitempty"`
	// Secure: auto (default; Secure when the request is HTTPS), always or never.
	Secure string `json:"secure,omitempty"`
}

// Unauthenticated says how a request that needs a session and has none is
// answered. By default a browser navigation gets a 303 to the login path
// with ?next=, anything else a 401 with a JSON body.
type Unauthenticated struct {
	// Always redirect (303), to URL or, when empty, the first login path.
	Redirect bool   `json:"redirect,omitempty"`
	URL      string `json:"url,omitempty"`
	// Answer with this status code and a JSON body instead.
	Status int `json:"status,omitempty"`
}

// Rate is a count per window.
type Rate struct {
	Count  int            `json:"count,omitempty"`
	Window caddy.Duration `json:"window,omitempty"`
}

// StoreUnavailable is the failure policy when the store cannot answer.
type StoreUnavailable struct {
	// deny (default) or grace.
	Mode string `json:"mode,omitempty"`
	// With grace: how recently this process must have validated a session.
	Grace caddy.Duration `json:"grace,omitempty"`
}

// Notify delivers security events to a webhook.
type Notify struct {
	URL string `json:"url,omitempty"`
	// HMAC-SHA256 secret for X-Signature-256. {env.*} placeholders are expanded.
	Secret string `json:"secret,omitempty"`
	// Events to deliver: new_login new_device new_country impossible_travel ip_change revoke
	// token_created.
	Events []string `json:"events,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// applyDefaults fills what the config left out. It is idempotent, so the
// Caddyfile parser can run it to check combinations at adapt time.
func (h *Handler) applyDefaults() {
	if h.Store == nil {
		h.Store = &StoreConfig{Type: "file"}
	}
	if h.Cookie == nil {
		h.Cookie = &CookieConfig{}
	}
	if h.Cookie.Path == "" {
		h.Cookie.Path = "/"
	}
	if h.Cookie.SameSite == "" {
		h.Cookie.SameSite = "lax"
	}
	if h.Cookie.Secure == "" {
		h.Cookie.Secure = "auto"
	}
	if h.Lifetime == 0 {
		h.Lifetime = caddy.Duration(defaultLifetime)
	}
	if h.IdleTimeout == nil {
		// Follows the lifetime, so that a short lifetime alone is a
		// whole config (an idle timeout past it would mean nothing).
		d := caddy.Duration(min(time.Duration(h.Lifetime), maxDefaultIdle))
		h.IdleTimeout = &d
	}
	if h.TouchInterval == 0 {
		h.TouchInterval = caddy.Duration(defaultTouchInterval)
	}
	if h.Retention == 0 {
		h.Retention = caddy.Duration(defaultRetention)
	}
	if h.MaxSessions == nil {
		n := session.DefaultMaxSession
		h.MaxSessions = &n
	}
	if h.MaxSessionsMode == "" {
		h.MaxSessionsMode = string(session.LimitOldest)
	}
	if len(h.Login) == 0 {
		h.Login = []string{defaultLoginPath}
	}
	if h.Endpoints == "" {
		h.Endpoints = defaultEndpoints
	}
	if h.HeaderPrefix == "" {
		h.HeaderPrefix = defaultHeaderPrefix
	}
	if h.IPChange == "" {
		h.IPChange = "flag"
	}
	if h.CountryChange == "" {
		h.CountryChange = "flag"
	}
	if h.LoginRate == nil {
		h.LoginRate = &Rate{Count: 10, Window: caddy.Duration(time.Minute)}
	}
	if h.GuessRate == nil {
		h.GuessRate = &Rate{Count: 100, Window: caddy.Duration(time.Minute)}
	}
	if h.StoreUnavailable == nil {
		h.StoreUnavailable = &StoreUnavailable{Mode: "deny"}
	}
	if h.APITokens != nil {
		if h.APITokens.MaxLifetime == 0 {
			h.APITokens.MaxLifetime = caddy.Duration(defaultTokenLifetime)
		}
		if h.APITokens.Fresh == 0 {
			h.APITokens.Fresh = caddy.Duration(defaultTokenFresh)
		}
		if h.APITokens.MaxPerUser == 0 {
			h.APITokens.MaxPerUser = defaultTokensPerUser
		}
	}
	h.Store.applyDefaults()
}

// check reports the first impossible setting or combination, in words a
// Caddyfile author can act on.
func (h *Handler) check() error {
	idle := time.Duration(*h.IdleTimeout)
	switch {
	case h.Lifetime <= 0:
		return errors.New("lifetime must be positive")
	case idle < 0:
		return errors.New("idle_timeout must not be negative")
	case h.TouchInterval <= 0:
		return errors.New("touch_interval must be positive")
	case h.Retention <= 0:
		return errors.New("retention must be positive")
	case idle > time.Duration(h.Lifetime):
		return blame(fmt.Errorf("idle_timeout (%s) must not exceed lifetime (%s)", idle, time.Duration(h.Lifetime)), "idle_timeout", "lifetime")
	case idle > 0 && time.Duration(h.TouchInterval) >= idle:
		return blame(fmt.Errorf("touch_interval (%s) must be shorter than idle_timeout (%s)", time.Duration(h.TouchInterval), idle), "touch_interval", "idle_timeout")
	case *h.MaxSessions < 0:
		return errors.New("max_sessions must not be negative")
	case h.Cache < 0:
		return errors.New("cache must not be negative")
	}
	if err := oneOf("max_sessions mode", h.MaxSessionsMode, "oldest", "least_recent", "reject"); err != nil {
		return err
	}
	if err := oneOf("ip_change", h.IPChange, "allow", "flag", "deny"); err != nil {
		return err
	}
	if err := oneOf("country_change", h.CountryChange, "allow", "flag", "deny"); err != nil {
		return err
	}
	if err := oneOf("store_unavailable", h.StoreUnavailable.Mode, "deny", "grace"); err != nil {
		return err
	}
	if h.StoreUnavailable.Mode == "grace" && h.StoreUnavailable.Grace <= 0 {
		return errors.New("store_unavailable grace needs a positive duration")
	}
	for name, r := range map[string]*Rate{"login_rate": h.LoginRate, "guess_rate": h.GuessRate} {
		if r.Count <= 0 || r.Window <= 0 {
			return fmt.Errorf("%s needs a positive count and window", name)
		}
	}
	if err := h.Cookie.check(); err != nil {
		return blame(err, "cookie")
	}
	if err := h.Store.check(); err != nil {
		return blame(err, "store")
	}
	if !strings.HasPrefix(h.Endpoints, "/") || strings.HasSuffix(h.Endpoints, "/") || h.Endpoints != cleanPath(h.Endpoints) {
		return fmt.Errorf("endpoints %q must be a clean path like /.auth", h.Endpoints)
	}
	if !validHeaderPrefix(h.HeaderPrefix) {
		return fmt.Errorf("header_prefix %q must be letters, digits and dashes", h.HeaderPrefix)
	}
	for _, p := range h.Login {
		if _, err := parseLoginPath(p); err != nil {
			return err
		}
		if pathUnder(strings.TrimSuffix(p, "*"), h.Endpoints) {
			return blame(fmt.Errorf("login path %q is under endpoints %q", p, h.Endpoints), "login", "endpoints")
		}
	}
	if u := h.Unauthenticated; u != nil {
		if u.Redirect && u.Status != 0 {
			return errors.New("unauthenticated takes redirect or status, not both")
		}
		if u.Status != 0 && (u.Status < 400 || u.Status > 599) {
			return fmt.Errorf("unauthenticated status %d must be a 4xx or 5xx code", u.Status)
		}
	}
	if t := h.APITokens; t != nil {
		switch {
		case t.MaxLifetime < 0:
			return errors.New("api_tokens max_lifetime must be positive")
		case t.Fresh < 0:
			return errors.New("api_tokens fresh must be positive")
		case t.MaxPerUser < 0:
			return errors.New("api_tokens max_per_user must be positive")
		}
	}
	if h.SignIn != nil {
		if err := h.SignIn.check(); err != nil {
			return err
		}
	}
	if err := checkBaseURL(h.BaseURL); err != nil {
		return err
	}
	if err := checkPasswordURL(h.PasswordURL); err != nil {
		return err
	}
	if err := checkAdminRole(h.AdminRole); err != nil {
		return blame(err, "admin_role")
	}
	if f := h.ForwardAuth; f != nil {
		if h.BaseURL == "" {
			return blame(errForwardAuthBaseURL, "forward_auth")
		}
		if err := f.check(); err != nil {
			return blame(err, "forward_auth")
		}
	}
	if n := h.Notify; n != nil {
		if n.URL == "" {
			return errors.New("notify needs a URL")
		}
		for _, e := range n.Events {
			if err := oneOf("notify event", e, notifyEvents...); err != nil {
				return err
			}
		}
	}
	if err := h.NotifyEmail.check(); err != nil {
		return err
	}
	return nil
}

// fieldError is a check failure with the subdirectives that can cure it,
// the likeliest first, so that the Caddyfile names the line at fault
// rather than the end of the block.
type fieldError struct {
	fields []string
	err    error
}

func (e *fieldError) Error() string { return e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func blame(err error, fields ...string) error { return &fieldError{fields: fields, err: err} }

var notifyEvents = []string{"new_login", "new_device", "new_country", "impossible_travel", "ip_change", "revoke", "token_created"}

func oneOf(what, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s %q must be one of %s", what, v, strings.Join(allowed, ", "))
}

func (c *CookieConfig) check() error {
	if c.Name != "" && !validCookieName(c.Name) {
		return fmt.Errorf("cookie name %q is not a valid cookie name", c.Name)
	}
	if strings.HasPrefix(c.Name, "__Host-") && (c.Domain != "" || c.Path != "/") {
		return errors.New("a __Host- cookie takes no domain and path / only")
	}
	if strings.HasPrefix(c.Name, "__Host-") || strings.HasPrefix(c.Name, "__Secure-") {
		if c.Secure == "never" {
			return fmt.Errorf("cookie %q needs Secure; secure never is impossible", c.Name)
		}
	}
	if !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, ";,\x00 \t\r\n") {
		return fmt.Errorf("cookie path %q must start with / and hold no ; , or spaces", c.Path)
	}
	if strings.ContainsAny(c.Domain, ";,/ \t\r\n\x00") {
		return fmt.Errorf("cookie domain %q is not a domain", c.Domain)
	}
	if err := oneOf("cookie same_site", c.SameSite, "lax", "strict", "none"); err != nil {
		return err
	}
	if err := oneOf("cookie secure", c.Secure, "auto", "always", "never"); err != nil {
		return err
	}
	if c.SameSite == "none" && c.Secure == "never" {
		return errors.New("same_site none needs a Secure cookie; secure never is impossible")
	}
	return nil
}

// Provision sets the handler up. It opens no connection: go-redis dials
// on first use, so `caddy validate` needs no Redis.
//
// Caddy reports a failed Provision at the end of a long chain of module
// names; the log line says the reason first, with the site it concerns.
func (h *Handler) Provision(ctx caddy.Context) error {
	err := h.provision(ctx)
	if err != nil {
		h.logger.Error("session_auth: "+err.Error(), zap.String("site", h.site))
	}
	return err
}

func (h *Handler) provision(ctx caddy.Context) error {
	if h.logger == nil { // tests give theirs (testLogger), so that a failure reads at once
		h.logger = ctx.Logger()
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.applyDefaults()
	err := h.check()
	if err != nil {
		return err
	}
	if err := h.learnSite(ctx); err != nil {
		return err
	}
	h.cookies = &cookieRules{cfg: h.Cookie, siteTLS: h.siteTLS}
	repl := caddy.NewReplacer()
	h.SignHeaders = repl.ReplaceAll(h.SignHeaders, "")
	if h.Notify != nil {
		h.Notify.Secret = repl.ReplaceAll(h.Notify.Secret, "")
	}
	if h.NotifyEmail != nil {
		if h.mail, err = h.NotifyEmail.server(repl); err != nil {
			return err
		}
	}
	if err := h.provisionSecret(); err != nil {
		return err
	}
	if h.signIn, err = newSignIn(h); err != nil {
		return err
	}
	h.signInEnabled = h.SignIn != nil

	h.policy = session.Policy{
		Lifetime:      time.Duration(h.Lifetime),
		IdleTimeout:   time.Duration(*h.IdleTimeout),
		TouchInterval: time.Duration(h.TouchInterval),
		Retention:     time.Duration(h.Retention),
	}
	h.limit = session.Limit{Max: *h.MaxSessions, Mode: session.LimitMode(h.MaxSessionsMode)}
	if h.APITokens != nil {
		h.limit.Tokens = h.APITokens.MaxPerUser
	}
	h.logins = h.logins[:0]
	for _, p := range h.Login {
		lp, _ := parseLoginPath(p) // checked above
		h.logins = append(h.logins, lp)
	}
	h.headers = newHeaderNames(h.HeaderPrefix)
	h.blocked = newBlocklist(maxBlocked)
	h.fullStore = &sometimes{every: time.Minute}
	if h.StoreUnavailable.Mode == "grace" {
		h.grace = newGraceCache(time.Duration(h.StoreUnavailable.Grace), maxGraceEntries)
	}
	h.metrics = newMetrics(ctx.GetMetricsRegistry(), h.logger)

	ps, key, err := loadStore(h.Store, h.logger)
	if err != nil {
		return err
	}
	h.store, h.storeKey = h.timed(ps), key
	if _, inServer := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); inServer {
		err := h.checkStoreAtStart(ctx, ps)
		if err == nil {
			err = checkAtStart(ctx, h) // the providers' discovery (oidccheck.go)
		}
		if err != nil {
			_, _ = storePool.Delete(h.storeKey)
			h.storeKey = ""
			return err
		}
	} else if err := openNow(ps); err != nil { // no Caddy to start it: a test's handler
		_, _ = storePool.Delete(h.storeKey)
		h.storeKey = ""
		return err
	}
	if h.GeoIP != "" {
		if h.geo, err = loadGeo(h.GeoIP, h.logger); err != nil {
			_, _ = storePool.Delete(h.storeKey)
			h.storeKey = ""
			return fmt.Errorf("geoip %s: %w", h.GeoIP, err)
		}
	}
	wireParts(h)
	registerHandler(h)
	if h.Notify != nil || h.mail != nil {
		if h.dispatcher, err = loadDispatcher(h); err != nil {
			return err // Caddy cleans up after a failed Provision
		}
	}
	h.feed, _ = session.As[session.RevocationFeed](ps)
	h.socketWatch = &revocationWatch{}
	if err := attachCache(h, h.feed); err != nil {
		return err
	}
	wireOIDC(h)
	h.explainOptions()
	return nil
}

// explainOptions logs, once per config, what an option will not do here.
func (h *Handler) explainOptions() {
	if h.Cache != 0 && h.Store.embedded() {
		h.logger.Info("cache has nothing to save with an embedded store (file or memory): every check is in process already")
	}
}

// Cleanup releases the store; the pool closes it when no config uses it.
//
// It runs once, and writes nothing the request path reads: requests of
// the old config may still be in flight while a reload cleans it up.
func (h *Handler) Cleanup() error {
	if h.cleanedUp {
		return nil
	}
	h.cleanedUp = true
	unregisterHandler(h)
	err := detachCache(h)
	if h.dispatcher != nil {
		h.dispatcher.release(h.Notify, h.mail)
		_, derr := dispatcherPool.Delete(h.storeKey)
		err = errors.Join(err, derr)
	}
	if w := h.socketWatch; w != nil {
		err = errors.Join(err, w.release(h))
	}
	if h.geo != nil {
		_, gerr := geoPool.Delete(h.GeoIP)
		err = errors.Join(err, gerr)
	}
	if h.storeKey != "" {
		_, serr := storePool.Delete(h.storeKey)
		err = errors.Join(err, serr)
	}
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
