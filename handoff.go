package sessionauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/geo"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// The hand-off protocol: response headers from the upstream to the gateway.
const (
	hdrLogin       = "Session-Login"
	hdrLoginEmail  = "Session-Login-Email"
	hdrLoginName   = "Session-Login-Name"
	hdrLoginRoles  = "Session-Login-Roles"
	hdrLogout      = "Session-Logout"
	loginHdrPrefix = "session-login"
)

// handOff is the upstream's hand-off (Session-Login, Session-Logout):
// the interceptor takes it off the upstream's answer, and the part mints
// or ends sessions by it.
type handOff struct {
	cookies *cookieRules
	store   session.Store
	policy  session.Policy
	metrics *metrics
	now     func() time.Time
	host    handOffHost
}

// handOffHost is what the hand-off takes from the handler: minting,
// ending, the cookie and the log.
type handOffHost interface {
	log(ctx context.Context) *zap.Logger
	mint(w http.ResponseWriter, r *http.Request, who signedIn) (*session.Session, error)
	storeUnavailable(w http.ResponseWriter, r *http.Request, err error) error
	sessionsEnded(ended []*session.Session, e ending)
}

func newHandOff(h *Handler) *handOff {
	return &handOff{cookies: h.cookies, store: h.store, policy: h.policy, metrics: h.metrics, now: h.now, host: h}
}

// interceptor sits between the upstream and the client: before the
// upstream's status line goes out it takes the hand-off headers off the
// response and acts on them (mint a session, revoke sessions).
type interceptor struct {
	caddyhttp.ResponseWriterWrapper // by value: one allocation per request, not two
	ho                              *handOff
	r                               *http.Request
	sess                            *session.Session // the request's valid session, if any
	login                           bool             // the request is on a login path

	wroteHeader bool
	discard     bool // the upstream's answer was replaced; drop its body
}

func (w *interceptor) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		stripHandoff(w.Header()) // never leak hand-off headers, even in 103
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.wroteHeader = true
	if w.ho.onResponse(w, code) {
		w.discard = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *interceptor) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps io.Copy from writing around WriteHeader.
func (w *interceptor) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return io.Copy(io.Discard, src)
	}
	return w.ResponseWriterWrapper.ReadFrom(src)
}

// Flush and FlushError keep a flush from sending unexamined headers.
func (w *interceptor) Flush() { _ = w.FlushError() }

func (w *interceptor) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return nil
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// finish runs after the upstream: an upstream that wrote nothing still
// gets its headers examined, exactly once.
func (w *interceptor) finish(err error) error {
	if err == nil && !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return err
}

// stripHandoff removes every Session-Login* and Session-Logout header.
func stripHandoff(hdr http.Header) {
	for k := range hdr {
		if len(k) >= len(loginHdrPrefix) && strings.EqualFold(k[:len(loginHdrPrefix)], loginHdrPrefix) ||
			strings.EqualFold(k, hdrLogout) {
			delete(hdr, k)
		}
	}
}

// onResponse acts on the hand-off headers before the status line is sent.
// It returns true when it has answered in the upstream's place.
func (ho *handOff) onResponse(w *interceptor, code int) (replaced bool) {
	hdr := w.Header()
	userID := hdr.Get(hdrLogin)
	_, hasLogin := hdr[hdrLogin]
	email, name, roles := hdr.Get(hdrLoginEmail), hdr.Get(hdrLoginName), hdr.Get(hdrLoginRoles)
	logout := strings.ToLower(strings.TrimSpace(hdr.Get(hdrLogout)))
	stripHandoff(hdr)
	if w.login && !hasLogin && w.r.Method == http.MethodPost {
		// A sign-in attempt the upstream did not hand off: failed, as far
		// as the gateway can tell.
		if c := ho.host.log(w.r.Context()).Check(zap.InfoLevel, "sign-in attempt not handed off"); c != nil {
			c.Write(zap.String("ip_address", clientIP(w.r)), zap.Int("status", code), zap.String("path", sanitise(w.r.URL.Path, 256)))
		}
	}
	if !hasLogin && logout == "" {
		return false
	}

	cur := w.sess
	if hasLogin {
		switch {
		case !w.login:
			ho.host.log(w.r.Context()).Warn("Session-Login ignored outside the login paths",
				zap.String("path", w.r.URL.Path), zap.Int("status", code))
		case code < 200 || code >= 400:
			ho.host.log(w.r.Context()).Warn("Session-Login ignored on a response that is not 2xx or 3xx", zap.Int("status", code))
		default:
			minted, err := ho.signIn(w, userID, email, name, roles)
			if err != nil {
				ho.replaceResponse(w, err)
				return true
			}
			cur = minted
		}
	}
	if logout != "" {
		if err := ho.upstreamLogout(w, logout, cur); err != nil {
			// The app believes the sessions are gone (a password change,
			// say): its answer must not reach the client as if they were.
			ho.replaceResponse(w, err)
			return true
		}
	}
	return false
}

// errUpstreamHandOff is an unusable Session-Login from the upstream.
var errUpstreamHandOff = errors.New("invalid Session-Login from the upstream")

// replaceResponse answers in the upstream's place when a hand-off could
// not be honoured: no cookie, none of the upstream's headers, and its
// body dropped.
func (ho *handOff) replaceResponse(w *interceptor, err error) {
	hdr := w.Header()
	for k := range hdr {
		delete(hdr, k)
	}
	rw, r := w.ResponseWriter, w.r
	switch {
	case errors.Is(err, session.ErrLimitReached):
		_ = answer(rw, r, problemTooManySessions)
	case errors.As(err, new(errRateLimited)):
		_ = tooMany(rw, r, err)
	case errors.Is(err, errUpstreamHandOff):
		ho.host.log(r.Context()).Error("sign-in hand-off refused", zap.Error(err))
		_ = answer(rw, r, problemBadHandOff)
	default:
		ho.metrics.request(outcomeStoreError)
		_ = ho.host.storeUnavailable(rw, r, err)
	}
}

// signIn mints a session for the user the upstream named, replacing the
// one the client came with, and sets the cookie on the response.
func (ho *handOff) signIn(w *interceptor, userID, email, name, roles string) (*session.Session, error) {
	if err := checkIdentity(userID, email, name, roles); err != nil {
		return nil, fmt.Errorf("%w: %v", errUpstreamHandOff, err)
	}
	return ho.host.mint(w, w.r, signedIn{userID: userIDOf(userID), email: email, name: name, roles: roles, method: session.MethodHandoff})
}

// newSession describes a sign-in by method from ip with user agent ua on
// deviceID (the device cookie's id, kept as its digest): the device from
// the user agent, the place from GeoIP.
func (h *Handler) newSession(ctx context.Context, id, userID string, hash [32]byte, method, ip, ua, deviceID string) *session.Session {
	now := h.now()
	ua = sanitise(ua, maxUserAgent)
	d := geo.ParseUserAgent(ua)
	loc := h.place(ctx, ip)
	return &session.Session{
		ID: id, UserID: userID, TokenHash: hash,
		IP: ip, LoginIP: ip, UserAgent: ua,
		Device: d.Name, DeviceType: d.Type, Browser: d.Browser, OS: d.OS,
		Country: loc.Country, City: loc.City, LoginCountry: loc.Country,
		Lat: loc.Lat, Lon: loc.Lon, HasCoord: loc.HasCoord,
		DeviceID: session.DeviceDigest(deviceID), CreatedAt: now, LastActiveAt: now, // the store keeps no cookie value
		Kind: session.KindBrowser, AuthMethod: method, AuthenticatedAt: now,
	}
}

// Undoing a sign-in the store failed: tries, the first wait between
// them, and the longest.
const (
	abandonTries   = 12
	abandonWait    = 100 * time.Millisecond
	abandonMaxWait = 30 * time.Second
)

// abandon undoes a sign-in whose Create failed (err): the store may have
// written the session and lost the reply, and a session nobody holds
// must not stay listed and counted towards max_sessions (with reject, it
// would lock the user out for its lifetime). It runs in the background,
// retrying while the store does not answer; the sessions the sign-in
// ended for the limit are logged, notified and announced as they would
// have been. A refusal (the limit with reject) wrote nothing.
func (h *Handler) abandon(s *session.Session, err error) {
	if errors.Is(err, session.ErrLimitReached) || errors.Is(err, session.ErrTooManyTokens) || errors.Is(err, session.ErrNotFound) {
		return // refused: nothing was written
	}
	go func() {
		wait := abandonWait
		for try := 1; ; try++ {
			ctx := context.Background()
			ended, err := h.store.Discard(ctx, s, h.policy)
			if err == nil {
				if len(ended) > 0 {
					h.sessionsEnded(ended, ending{reason: session.EndLimit, actor: session.ActorLimit, at: ended[0].EndedAt})
				}
				return
			}
			if try == abandonTries || errors.Is(err, session.ErrClosed) {
				h.logger.Error("cannot undo a failed sign-in: its session may stay until it expires or is revoked",
					zap.String("user_id", s.UserID), zap.String("session_id", s.ID), zap.Error(err))
				return
			}
			time.Sleep(wait)
			wait = min(2*wait, abandonMaxWait)
		}
	}()
}

// recordLogin counts, logs and notifies a new session and what its
// creation ended. r is nil for sessions the admin API mints.
func (h *Handler) recordLogin(r *http.Request, s *session.Session, ended []*session.Session) {
	h.metrics.login()
	h.logEvent(session.LoginEvent(s))
	for _, e := range session.RiskEvents(s, s.Risk, s.CreatedAt) {
		h.logEvent(e)
	}
	e := ending{reason: session.EndLimit, actor: session.ActorLimit, at: s.CreatedAt}
	if r != nil {
		e.ctx = r.Context() // the sign-in's trace
	}
	h.sessionsEnded(ended, e)
	h.notifier.login(r, s)
}

// upstreamLogout applies Session-Logout: current, others or all. It
// answers an error only when the store failed: the client then gets 503,
// never a silent 200 while the sessions live on.
func (ho *handOff) upstreamLogout(w *interceptor, mode string, cur *session.Session) error {
	if cur == nil {
		ho.host.log(w.r.Context()).Warn("Session-Logout ignored: the request has no session", zap.String("mode", mode))
		return nil
	}
	ctx := w.r.Context()
	now := ho.now()
	var ended []*session.Session
	var err error
	switch mode {
	case "current":
		var s *session.Session
		if s, err = ho.store.End(ctx, cur.ID, now, session.EndRevoked, session.ActorUpstream, ho.policy); err == nil {
			ended = []*session.Session{s}
		}
		if errors.Is(err, session.ErrNotFound) {
			err = nil
		}
	case "others":
		ended, err = ho.store.EndUser(ctx, cur.UserID, cur.ID, now, session.EndRevoked, session.ActorUpstream, ho.policy)
	case "all":
		ended, err = ho.store.EndUser(ctx, cur.UserID, "", now, session.EndRevoked, session.ActorUpstream, ho.policy)
	default:
		ho.host.log(w.r.Context()).Warn("Session-Logout ignored: must be current, others or all", zap.String("value", sanitise(mode, 64)))
		return nil
	}
	if err != nil {
		ho.host.log(w.r.Context()).Error("Session-Logout failed: the client gets 503", zap.String("mode", mode), zap.Error(err))
		return err
	}
	ho.host.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorUpstream, at: now, ctx: w.r.Context()})
	if mode != "others" {
		http.SetCookie(w, ho.cookies.sessionCookie(w.r, "", -1))
	}
	return nil
}

// logEvent mirrors an audit event to Caddy's log; the store keeps it.
func (h *Handler) logEvent(e session.Event) {
	if c := h.logger.Check(zap.InfoLevel, "session "+e.Type); c != nil {
		c.Write(zap.String("event", e.Type), zap.String("user_id", e.UserID), zap.String("session_id", e.SessionID),
			zap.String("ip_address", e.IP), zap.String("reason", e.Reason), zap.String("actor", e.Actor))
	}
}
