package sessionauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// The admin console (SPEC 17): with admin_role, {endpoints}/admin shows
// people with that role the store's figures (admin_stats.go draws them),
// finds sessions by user id or IP, and signs them out. Every route needs
// the role; an action also needs a sign-in or step-up within adminFresh,
// the CSRF token and the same origin, and is recorded in the store with
// actor admin:<user id>.
const (
	adminFresh = 10 * time.Minute
	// adminConfirm is what "Sign out everyone" asks to be typed.
	adminConfirm   = "EVERYONE"
	maxAdminForm   = 16 << 10
	maxAdminResult = 100 // sessions a search lists
)

// adminConsole is the console's part: nil without admin_role.
type adminConsole struct {
	h    *Handler
	role string
}

func newAdminConsole(h *Handler) *adminConsole {
	if h.AdminRole == "" {
		return nil
	}
	return &adminConsole{h: h, role: h.AdminRole}
}

// addRoutes puts the console's routes in the table (c nil: off).
func (c *adminConsole) addRoutes(e *endpointRoutes) {
	if c == nil {
		return
	}
	page := func(f func(w http.ResponseWriter, r *http.Request) error) endpointFunc {
		return func(w http.ResponseWriter, r *http.Request, _ string) error { return f(w, r) }
	}
	notAllowed := func(allow string) endpointFunc {
		return func(w http.ResponseWriter, _ *http.Request, _ string) error { return methodNotAllowed(w, allow) }
	}
	e.add([]route{
		{"GET /admin", page(c.show)},
		{"/admin", notAllowed("GET, HEAD")},
		{"GET /admin/stats", page(c.serveStats)},
		{"/admin/stats", notAllowed("GET, HEAD")},
		{"POST /admin/sessions/{rest}/revoke", c.revokeSession},
		{"/admin/sessions/{rest}/revoke", notAllowed("POST")},
		// A user id may hold a "/" (escaped in the path): the route takes
		// the rest and revokeUser reads the id from the path as sent.
		{"POST /admin/users/{rest...}", c.revokeUser},
		{"/admin/users/{rest...}", notAllowed("POST")},
		{"POST /admin/revoke-everyone", page(c.revokeEveryone)},
		{"/admin/revoke-everyone", notAllowed("POST")},
		{"/admin/{rest...}", func(w http.ResponseWriter, _ *http.Request, _ string) error {
			return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
		}},
	})
}

var (
	problemNotAdmin = problem{http.StatusForbidden, "forbidden", "This page is for the site's administrators",
		"You are signed in, but your account does not have the administrator role this page needs."}
	problemAdminToken = problem{http.StatusForbidden, "token_cannot_act", "Administrators act in a browser",
		"An access token cannot sign sessions out from the admin console: use the console in a browser, or the admin API."}
	problemAdminStale = problem{http.StatusForbidden, "step_up_required", "Sign in again to act",
		"Administrator actions are made only within 10 minutes of signing in. Sign in again, then try once more."}
	problemAdminConfirm = problem{http.StatusBadRequest, "confirmation_required", "Nothing was done",
		"Signing out everyone needs the word " + adminConfirm + " typed in its field. Go back and type it to go on."}
	problemAdminNoSession = problem{http.StatusNotFound, "not_found", "No such session",
		"That session is no longer active: it may have been signed out already."}
)

// admin authenticates the request and checks the role. done: it answered.
func (c *adminConsole) admin(w http.ResponseWriter, r *http.Request) (cur *session.Session, done bool, err error) {
	if cur, err = c.h.requireSession(w, r); cur == nil {
		return nil, true, err
	}
	if !holdsAnyRole(cur.Roles, []string{c.role}) {
		return nil, true, answer(w, r, problemNotAdmin)
	}
	return cur, false, nil
}

// act is what every action checks first: same origin, the role, a
// browser session, its CSRF token and a recent proof. done: it answered.
func (c *adminConsole) act(w http.ResponseWriter, r *http.Request) (cur *session.Session, done bool, err error) {
	if crossSite(r) {
		return nil, true, answer(w, r, problemCrossSite)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAdminForm)
	if err := r.ParseForm(); err != nil {
		return nil, true, answer(w, r, problemBadForm)
	}
	if cur, done, err = c.admin(w, r); done {
		return nil, true, err
	}
	if cur.IsToken() {
		return nil, true, answer(w, r, problemAdminToken)
	}
	if !validCSRF(r, cur) {
		return nil, true, answer(w, r, problemFormExpired)
	}
	if c.h.now().Sub(cur.AuthenticatedOrCreated()) > adminFresh {
		if wantsPage(r) && c.h.signIn != nil {
			next := c.h.Endpoints + "/admin"
			if q := r.PostFormValue("q"); q != "" {
				next += "?q=" + url.QueryEscape(q)
			}
			w.Header().Set("Location", c.h.Endpoints+"/sign-in?step_up=1&next="+url.QueryEscape(next))
			w.WriteHeader(http.StatusSeeOther)
			return nil, true, nil
		}
		return nil, true, answer(w, r, problemAdminStale)
	}
	return cur, false, nil
}

// actor is who the audit trail names for an action of cur.
func actor(cur *session.Session) string { return session.ActorAdmin + ":" + cur.UserID }

// ended does for sessions an admin ended what follows every end (see
// sessionsEnded): the metric (by the fixed actor "admin", a label of a
// small set), forgetting them in this process, the log line naming the
// admin, and the users' notices.
func (c *adminConsole) ended(ctx context.Context, ended []*session.Session, at time.Time, who string) {
	if len(ended) == 0 {
		return
	}
	c.h.metrics.revocation(session.ActorAdmin, len(ended))
	forgetEverywhere(c.h, idsOf(ended)...)
	for _, s := range ended {
		c.h.logEvent(session.EndEvent(s, at, session.EndRevoked, who))
	}
	c.h.notifier.ended(ctx, ended, at)
}

// done answers an action: back to the console with a notice for a
// browser, the ids ended for anything else.
func (c *adminConsole) done(w http.ResponseWriter, r *http.Request, ended []*session.Session, what string) error {
	if !wantsPage(r) {
		return writeJSON(w, http.StatusOK, map[string]any{"revoked": append([]string{}, idsOf(ended)...)})
	}
	q := url.Values{"done": {what}, "n": {strconv.Itoa(len(ended))}}
	if s := r.PostFormValue("q"); s != "" {
		q.Set("q", s)
	}
	w.Header().Set("Location", c.h.Endpoints+"/admin?"+q.Encode())
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// revokeSession answers POST {endpoints}/admin/sessions/<id>/revoke: the
// session and the API tokens it made.
func (c *adminConsole) revokeSession(w http.ResponseWriter, r *http.Request, id string) error {
	cur, done, err := c.act(w, r)
	if done {
		return err
	}
	if !session.ValidID(id) {
		return answer(w, r, problemAdminNoSession)
	}
	now := c.h.now()
	ended, err := c.h.store.EndWithTokens(r.Context(), id, now, session.EndRevoked, actor(cur), c.h.policy)
	c.ended(r.Context(), ended, now, actor(cur))
	if errors.Is(err, session.ErrNotFound) || (err == nil && ended[0].ID != id) {
		return answer(w, r, problemAdminNoSession)
	}
	if err != nil {
		return c.h.storeUnavailable(w, r, err)
	}
	if id == cur.ID {
		http.SetCookie(w, c.h.cookies.sessionCookie(r, "", -1))
	}
	return c.done(w, r, ended, "session")
}

// revokeUser answers POST {endpoints}/admin/users/<id>/revoke: every
// session of the user, but the admin's own one here.
func (c *adminConsole) revokeUser(w http.ResponseWriter, r *http.Request, rest string) error {
	if !strings.HasSuffix(rest, "/revoke") {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	user := pathUser(r.URL.EscapedPath())
	if user == "" {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	cur, done, err := c.act(w, r)
	if done {
		return err
	}
	except := ""
	if user == cur.UserID {
		except = cur.ID
	}
	now := c.h.now()
	ended, err := c.h.store.EndUser(r.Context(), user, except, now, session.EndRevoked, actor(cur), c.h.policy)
	c.ended(r.Context(), ended, now, actor(cur))
	if err != nil {
		return c.h.storeUnavailable(w, r, err)
	}
	return c.done(w, r, ended, "user")
}

// pathUser is the user id in …/admin/users/<id>/revoke as the client
// sent it (escaped: the id may hold a "/"), or "".
func pathUser(escaped string) string {
	_, raw, ok := strings.Cut(escaped, "/admin/users/")
	raw, found := strings.CutSuffix(raw, "/revoke")
	if !ok || !found {
		return ""
	}
	user, err := url.PathUnescape(raw)
	if err != nil {
		return ""
	}
	return user
}

// revokeEveryone answers POST {endpoints}/admin/revoke-everyone with
// confirm=EVERYONE: every session of every user, but the admin's own
// one here, through the store's "revoke everyone" (session.EndUsers, as
// the admin API's).
func (c *adminConsole) revokeEveryone(w http.ResponseWriter, r *http.Request) error {
	cur, done, err := c.act(w, r)
	if done {
		return err
	}
	if !strings.EqualFold(strings.TrimSpace(r.PostFormValue("confirm")), adminConfirm) {
		return answerWithWay(w, r, problemAdminConfirm, &wayOn{c.h.Endpoints + "/admin", "Back to the console"})
	}
	// The work goes on when the admin's browser goes away.
	ctx := context.WithoutCancel(r.Context())
	users, err := c.h.store.Users(ctx)
	if err != nil {
		return c.h.storeUnavailable(w, r, err)
	}
	users = slices.DeleteFunc(users, func(u string) bool { return u == cur.UserID })
	now := c.h.now()
	var all []*session.Session
	for start := 0; start < len(users); start += revokeBatch {
		batch := users[start:min(start+revokeBatch, len(users))]
		ended, err := session.EndUsers(ctx, c.h.store, batch, now, session.EndRevoked, actor(cur), c.h.policy)
		c.ended(ctx, ended, now, actor(cur))
		all = append(all, ended...)
		if err != nil {
			return c.h.storeUnavailable(w, r, err)
		}
	}
	own, err := c.h.store.EndUser(ctx, cur.UserID, cur.ID, now, session.EndRevoked, actor(cur), c.h.policy)
	c.ended(ctx, own, now, actor(cur))
	if err != nil {
		return c.h.storeUnavailable(w, r, err)
	}
	return c.done(w, r, append(all, own...), "everyone")
}

// search finds the active sessions of a user id, or last seen from an
// IP, newest activity first.
func (c *adminConsole) search(ctx context.Context, q string, now time.Time) ([]*session.Session, error) {
	if addr, err := netip.ParseAddr(q); err == nil {
		page, _, err := c.h.store.ByIP(ctx, addr.Unmap().WithZone("").String(), now, c.h.policy, "", maxAdminResult)
		return page, err
	}
	list, err := c.h.store.List(ctx, q, now, c.h.policy)
	if err != nil {
		return nil, err
	}
	list = slices.DeleteFunc(list, func(s *session.Session) bool { return !s.Active() || c.h.policy.Expired(s, now) })
	return list[:min(len(list), maxAdminResult)], nil
}

// parseAdminRole reads `admin_role <role>`.
func parseAdminRole(d *caddyfile.Dispenser, dst *string) error {
	if err := stringArg(d, dst); err != nil {
		return err
	}
	if err := checkAdminRole(*dst); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

// checkAdminRole: one role, as a session's comma-separated roles hold it.
func checkAdminRole(role string) error {
	if role != "" && (strings.TrimSpace(role) != role || strings.ContainsAny(role, ", \t")) {
		return fmt.Errorf("admin_role %q must be one role name, without spaces or commas", role)
	}
	return nil
}
