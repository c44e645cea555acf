package sessionauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessionauth/caddy-sessionauth/session"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves /session-auth/ on Caddy's admin endpoint. It acts on
// every distinct store of the running config: lists merge, revocations
// apply to all.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.session_auth",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/session-auth/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func apiError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

func (a adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	stores := distinctStores()
	if len(stores) == 0 {
		return apiError(http.StatusServiceUnavailable, "no session_auth handler in the running config")
	}
	segs, err := pathSegments(strings.TrimPrefix(r.URL.EscapedPath(), "/session-auth/"))
	if err != nil {
		return apiError(http.StatusBadRequest, "bad path: %v", err)
	}
	switch {
	case len(segs) == 3 && segs[0] == "users" && segs[2] == "sessions":
		switch r.Method {
		case http.MethodGet:
			return a.listUser(w, r, stores, segs[1])
		case http.MethodDelete:
			return a.revokeUser(w, r, stores, segs[1], r.URL.Query().Get("except"))
		}
	case len(segs) == 3 && segs[0] == "users" && segs[2] == "events":
		if r.Method == http.MethodGet {
			return a.events(w, r, stores, segs[1])
		}
	case len(segs) == 2 && segs[0] == "sessions":
		switch r.Method {
		case http.MethodGet:
			return a.show(w, r, stores, segs[1])
		case http.MethodDelete:
			return a.revoke(w, r, stores, segs[1])
		}
	case len(segs) == 1 && segs[0] == "sessions":
		switch r.Method {
		case http.MethodGet:
			return a.byIP(w, r, stores)
		case http.MethodPost:
			return a.mint(w, r, stores)
		case http.MethodDelete:
			return a.revokeEveryone(w, r, stores)
		}
	default:
		return apiError(http.StatusNotFound, "no such route: %s", r.URL.Path)
	}
	return apiError(http.StatusMethodNotAllowed, "method %s not allowed here", r.Method)
}

// pathSegments splits an escaped path and unescapes each part, so a user
// id may hold a slash (as %2F).
func pathSegments(p string) ([]string, error) {
	parts := strings.Split(strings.TrimSuffix(p, "/"), "/")
	for i, part := range parts {
		v, err := url.PathUnescape(part)
		if err != nil {
			return nil, err
		}
		if v == "" {
			return nil, errors.New("empty segment")
		}
		parts[i] = v
	}
	return parts, nil
}

func storeError(err error) error {
	return apiError(http.StatusServiceUnavailable, "session store: %v", err)
}

func (a adminAPI) listUser(w http.ResponseWriter, r *http.Request, stores []storeRef, user string) error {
	return mergedList(w, stores, func(ref storeRef) ([]*session.Session, error) {
		return ref.store.List(r.Context(), user, ref.h.now(), ref.h.policy)
	})
}

// mergedList answers one JSON list of sessions from every store, newest
// activity first, each shown under its own store's policy.
func mergedList(w http.ResponseWriter, stores []storeRef, fetch func(storeRef) ([]*session.Session, error)) error {
	var all []*session.Session
	policies := map[string]session.Policy{}
	for _, ref := range stores {
		list, err := fetch(ref)
		if err != nil {
			return storeError(err)
		}
		for _, s := range list {
			policies[s.ID] = ref.h.policy
		}
		all = append(all, list...)
	}
	session.SortByActivity(all)
	out := make([]sessionJSON, 0, len(all))
	for _, s := range all {
		out = append(out, toJSON(s, policies[s.ID], stores[0].h.now(), ""))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a adminAPI) revokeUser(w http.ResponseWriter, r *http.Request, stores []storeRef, user, except string) error {
	revoked := []string{}
	for _, ref := range stores {
		now := ref.h.now()
		ended, err := ref.store.EndUser(r.Context(), user, except, now, session.EndRevoked, session.ActorAdmin, ref.h.policy)
		if err != nil {
			return storeError(err)
		}
		revoked = append(revoked, adminEnded(ref, ended, now)...)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"revoked": revoked})
}

// adminEnded records sessions the admin ended, and drops them from every
// handler of this process, not only the store's own; it returns their ids.
func adminEnded(ref storeRef, ended []*session.Session, now time.Time) []string {
	ref.h.recordEnded(nil, ended, now, session.EndRevoked, session.ActorAdmin)
	ids := idsOf(ended)
	forgetEverywhere(ids...)
	return ids
}

// revokeEveryone ends every active session of every user, in every
// store: the emergency stop. It asks for ?all=true so that no stray
// DELETE does it.
func (a adminAPI) revokeEveryone(w http.ResponseWriter, r *http.Request, stores []storeRef) error {
	if r.URL.Query().Get("all") != "true" {
		return apiError(http.StatusBadRequest, "revoking every session needs ?all=true")
	}
	n := 0
	for _, ref := range stores {
		users, err := ref.store.Users(r.Context())
		if err != nil {
			return storeError(err)
		}
		for _, u := range users {
			now := ref.h.now()
			ended, err := ref.store.EndUser(r.Context(), u, "", now, session.EndRevoked, session.ActorAdmin, ref.h.policy)
			if err != nil {
				return storeError(err)
			}
			n += len(adminEnded(ref, ended, now))
		}
	}
	return writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

// byIP lists the active sessions last seen from ?ip=.
func (a adminAPI) byIP(w http.ResponseWriter, r *http.Request, stores []storeRef) error {
	addr, err := netip.ParseAddr(r.URL.Query().Get("ip"))
	if err != nil {
		return apiError(http.StatusBadRequest, "?ip= must be an IP address")
	}
	ip := addr.Unmap().WithZone("").String()
	return mergedList(w, stores, func(ref storeRef) ([]*session.Session, error) {
		return ref.store.ByIP(r.Context(), ip, ref.h.now(), ref.h.policy)
	})
}

func (a adminAPI) show(w http.ResponseWriter, r *http.Request, stores []storeRef, id string) error {
	if !session.ValidID(id) {
		return apiError(http.StatusNotFound, "no session %q", sanitise(id, 64))
	}
	for _, ref := range stores {
		s, err := ref.store.Get(r.Context(), id)
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			return storeError(err)
		}
		return writeJSON(w, http.StatusOK, toJSON(s, ref.h.policy, ref.h.now(), ""))
	}
	return apiError(http.StatusNotFound, "no session %s", id)
}

func (a adminAPI) revoke(w http.ResponseWriter, r *http.Request, stores []storeRef, id string) error {
	if !session.ValidID(id) {
		return apiError(http.StatusNotFound, "no session %q", sanitise(id, 64))
	}
	for _, ref := range stores {
		now := ref.h.now()
		s, err := ref.store.End(r.Context(), id, now, session.EndRevoked, session.ActorAdmin, ref.h.policy)
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			return storeError(err)
		}
		adminEnded(ref, []*session.Session{s}, now)
		return writeJSON(w, http.StatusOK, toJSON(s, ref.h.policy, now, ""))
	}
	return apiError(http.StatusNotFound, "no active session %s", id)
}

func (a adminAPI) events(w http.ResponseWriter, r *http.Request, stores []storeRef, user string) error {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return apiError(http.StatusBadRequest, "limit must be a number from 1 to 1000")
		}
		limit = n
	}
	out := []session.Event{}
	for _, ref := range stores {
		evs, err := ref.store.Events(r.Context(), user, ref.h.now().Add(-ref.h.policy.Retention), limit)
		if err != nil {
			return storeError(err)
		}
		out = append(out, evs...)
	}
	if len(stores) > 1 { // each store's own order is exact; merge by time
		slices.SortStableFunc(out, func(a, b session.Event) int { return b.At.Compare(a.At) })
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return writeJSON(w, http.StatusOK, out)
}

// mintRequest is the body of POST /session-auth/sessions.
type mintRequest struct {
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	Roles     string `json:"roles"`
	IPAddress string `json:"ip_address"`
	UserAgent string `json:"user_agent"`
}

type mintResponse struct {
	ID        string `json:"id"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	SetCookie string `json:"set_cookie"`
}

// mint creates a session for apps that keep their own sign-in. It goes to
// the first store of the config, under its handler's policy and limit.
func (a adminAPI) mint(w http.ResponseWriter, r *http.Request, stores []storeRef) error {
	var req mintRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return apiError(http.StatusBadRequest, "bad JSON body: %v", err)
	}
	if req.UserID == "" || len(req.UserID) > maxUserID || sanitise(req.UserID, maxUserID) != req.UserID {
		return apiError(http.StatusBadRequest, "user_id must be 1 to %d printable bytes", maxUserID)
	}
	ref := stores[0]
	h := ref.h
	id, token, hash, err := session.NewCredential(req.UserID)
	if err != nil {
		return apiError(http.StatusInternalServerError, "minting: %v", err)
	}
	ip := req.IPAddress
	if ip != "" {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return apiError(http.StatusBadRequest, "ip_address %q is not an IP address", sanitise(ip, 64))
		}
		ip = addr.Unmap().WithZone("").String()
	}
	s := h.newSession(id, req.UserID, hash, ip, req.UserAgent, "")
	s.Email, s.Name, s.Roles = sanitise(req.Email, maxValue), sanitise(req.Name, maxValue), sanitise(req.Roles, maxRoles)
	ended, err := ref.store.Create(r.Context(), s, h.policy, h.limit)
	if errors.Is(err, session.ErrLimitReached) {
		return apiError(http.StatusTooManyRequests, "user has %d active sessions", h.limit.Max)
	}
	if err != nil {
		h.abandon(s, err)
		return storeError(err)
	}
	h.recordLogin(nil, s, ended)
	// The cookie an HTTPS site would set; the token works under any name.
	fake := &http.Request{TLS: nil}
	if h.Cookie.Secure != "never" {
		fake = &http.Request{TLS: tlsPlaceholder}
	}
	return writeJSON(w, http.StatusCreated, mintResponse{
		ID: id, Token: token, ExpiresAt: rfc3339(h.policy.ExpiresAt(s)),
		SetCookie: h.sessionCookie(fake, token, h.policy.Lifetime).String(),
	})
}

// Interface guard
var _ caddy.AdminRouter = adminAPI{}
