package sessionauth

import (
	"context"
	"encoding/base64"
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
	if len(segs) == 3 && segs[0] == "users" {
		segs[1] = userIDOf(segs[1]) // email ids are one person in any case (SPEC 11)
	}
	switch {
	case segs[0] == "accounts" && len(segs) <= 3:
		return a.serveAccounts(w, r, stores, segs) // admin_accounts.go
	case len(segs) == 3 && segs[0] == "users" && segs[2] == "sessions":
		switch r.Method {
		case http.MethodGet:
			return a.listUser(w, r, stores, segs[1])
		case http.MethodDelete:
			return a.revokeUser(w, r, stores, segs[1], r.URL.Query().Get("except"))
		}
	case len(segs) == 3 && segs[0] == "users" && segs[2] == "tokens":
		if r.Method == http.MethodPost {
			return a.mintToken(w, r, stores, segs[1])
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
	case len(segs) == 1 && segs[0] == "backup":
		if r.Method == http.MethodGet {
			return a.backup(w, r, stores)
		}
	case len(segs) == 1 && segs[0] == "compact":
		if r.Method == http.MethodPost {
			return a.compact(w, r, stores)
		}
	case len(segs) == 1 && segs[0] == "check":
		if r.Method == http.MethodGet {
			return a.check(w, r, stores) // admin_check.go
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
	limit, after, err := pageParams(r)
	if err != nil {
		return err
	}
	var all []*session.Session
	policies := map[string]session.Policy{}
	for _, ref := range stores {
		list, err := ref.store.List(r.Context(), user, ref.h.now(), ref.h.policy)
		if err != nil {
			return storeError(err)
		}
		for _, s := range list {
			policies[s.ID] = ref.h.policy
		}
		all = append(all, list...)
	}
	session.SortByActivity(all)
	page, next, err := session.PageByActivity(all, after, limit)
	if err != nil {
		return errBadCursor
	}
	return writePage(w, r, sessionsJSON(page, policies, stores[0].h.now()), next)
}

// sessionsJSON shows sessions as the admin lists do, each under its own
// store's policy.
func sessionsJSON(ss []*session.Session, policies map[string]session.Policy, now time.Time) []sessionJSON {
	out := make([]sessionJSON, 0, len(ss))
	for _, s := range ss {
		out = append(out, toJSON(s, policies[s.ID], now, ""))
	}
	return out
}

// Lists answer a page at a time (SPEC section 6): ?limit= entries
// (default 100, at most 1000) after the opaque ?cursor= that the Link
// header of the page before gave.
const (
	defaultPageLen = 100
	maxPageLen     = 1000
)

var errBadCursor = apiError(http.StatusBadRequest, "cursor must be one a Link header of this API gave")

// pageParams reads ?limit= and ?cursor= (decoded).
func pageParams(r *http.Request) (limit int, after string, err error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, "", apiError(http.StatusBadRequest, "bad query string")
	}
	limit = defaultPageLen
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLen {
			return 0, "", apiError(http.StatusBadRequest, "limit must be a number from 1 to %d", maxPageLen)
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(b) == 0 {
			return 0, "", errBadCursor
		}
		after = string(b)
	}
	return limit, after, nil
}

// writePage answers one page of a list, with a Link to the next page
// (the same path and query, and the cursor) when there is one.
func writePage(w http.ResponseWriter, r *http.Request, page any, next string) error {
	if next != "" {
		q := r.URL.Query()
		q.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte(next)))
		w.Header().Set("Link", "<"+r.URL.EscapedPath()+"?"+q.Encode()+`>; rel="next"`)
	}
	return writeJSON(w, http.StatusOK, page)
}

func (a adminAPI) revokeUser(w http.ResponseWriter, r *http.Request, stores []storeRef, user, except string) error {
	revoked := []string{}
	for _, ref := range stores {
		now := ref.h.now()
		ended, err := ref.store.EndUser(r.Context(), user, except, now, session.EndRevoked, session.ActorAdmin, ref.h.policy)
		if err != nil {
			return storeError(err)
		}
		revoked = append(revoked, adminEnded(r.Context(), ref, ended, now)...)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"revoked": revoked})
}

// adminEnded records sessions the admin ended, and drops them from every
// handler of this process, not only the store's own; it returns their ids.
func adminEnded(ctx context.Context, ref storeRef, ended []*session.Session, now time.Time) []string {
	ref.h.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorAdmin, at: now, ctx: ctx})
	return idsOf(ended)
}

// byIP lists the active sessions last seen from ?ip=, store after store;
// its cursor is the store's index in the config and the store's own.
func (a adminAPI) byIP(w http.ResponseWriter, r *http.Request, stores []storeRef) error {
	addr, err := netip.ParseAddr(r.URL.Query().Get("ip"))
	if err != nil {
		return apiError(http.StatusBadRequest, "?ip= must be an IP address")
	}
	ip := addr.Unmap().WithZone("").String()
	limit, after, err := pageParams(r)
	if err != nil {
		return err
	}
	first, cur := 0, ""
	if after != "" {
		i, rest, ok := strings.Cut(after, "/")
		if first, err = strconv.Atoi(i); !ok || err != nil || first < 0 || first >= len(stores) {
			return errBadCursor
		}
		cur = rest
	}
	var out []*session.Session
	policies := map[string]session.Policy{}
	next := ""
	for i := first; i < len(stores) && len(out) < limit; i++ {
		ref := stores[i]
		page, more, err := ref.store.ByIP(r.Context(), ip, ref.h.now(), ref.h.policy, cur, limit-len(out))
		if errors.Is(err, session.ErrBadCursor) {
			return errBadCursor
		}
		if err != nil {
			return storeError(err)
		}
		cur = ""
		for _, s := range page {
			policies[s.ID] = ref.h.policy
		}
		out = append(out, page...)
		if more != "" {
			next = strconv.Itoa(i) + "/" + more
			break
		}
	}
	return writePage(w, r, sessionsJSON(out, policies, stores[0].h.now()), next)
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
		// The tokens it made end with it (SPEC 12).
		ended, err := ref.store.EndWithTokens(r.Context(), id, now, session.EndRevoked, session.ActorAdmin, ref.h.policy)
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			return storeError(err)
		}
		adminEnded(r.Context(), ref, ended, now)
		if ended[0].ID != id {
			continue // it had ended; its tokens have now
		}
		return writeJSON(w, http.StatusOK, toJSON(ended[0], ref.h.policy, now, ""))
	}
	return apiError(http.StatusNotFound, "no active session %s", id)
}

func (a adminAPI) events(w http.ResponseWriter, r *http.Request, stores []storeRef, user string) error {
	limit, after, err := pageParams(r)
	if err != nil {
		return err
	}
	all := []session.Event{}
	for _, ref := range stores {
		evs, err := ref.store.Events(r.Context(), user, ref.h.now().Add(-ref.h.policy.Retention), 0)
		if err != nil {
			return storeError(err)
		}
		all = append(all, evs...)
	}
	if len(stores) > 1 { // each store's own order is exact; merge by time
		slices.SortStableFunc(all, func(a, b session.Event) int { return b.At.Compare(a.At) })
	}
	page, next, err := pageEvents(all, after, limit)
	if err != nil {
		return err
	}
	return writePage(w, r, page, next)
}

// pageEvents returns the page of evs (newest first) after the position
// after, at most limit long, and the next page's position. A position is
// the time (ms) of the last event shown and how many events of that
// millisecond were shown: events that come meanwhile are newer and shift
// nothing.
func pageEvents(evs []session.Event, after string, limit int) ([]session.Event, string, error) {
	start := 0
	if after != "" {
		at, n, ok := strings.Cut(after, ":")
		ms, err1 := strconv.ParseInt(at, 10, 64)
		shown, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || shown < 1 {
			return nil, "", errBadCursor
		}
		for start < len(evs) && evs[start].At.UnixMilli() > ms {
			start++
		}
		for ; shown > 0 && start < len(evs) && evs[start].At.UnixMilli() == ms; shown-- {
			start++
		}
	}
	end := min(start+limit, len(evs))
	page := evs[start:end]
	if end == len(evs) {
		return page, "", nil
	}
	ms := evs[end-1].At.UnixMilli()
	shown := 0
	for i := end - 1; i >= 0 && evs[i].At.UnixMilli() == ms; i-- {
		shown++
	}
	return page, strconv.FormatInt(ms, 10) + ":" + strconv.Itoa(shown), nil
}

// mintRequest is the body of POST /session-auth/sessions.
type mintRequest struct {
	UserID    string   `json:"user_id"`
	Email     string   `json:"email"`
	Name      string   `json:"name"`
	Roles     roleList `json:"roles"`
	IPAddress string   `json:"ip_address"`
	UserAgent string   `json:"user_agent"`
}

type mintResponse struct {
	ID        string `json:"id"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	SetCookie string `json:"set_cookie"`
	// Sites: each site of the config that uses this store, with its own
	// Set-Cookie (cookie names and attributes differ between sites).
	Sites []mintedSite `json:"sites"`
}

type mintedSite struct {
	Site      string `json:"site"`
	SetCookie string `json:"set_cookie"`
	ownSignIn bool   // the site has sign_in: listed after the others
}

// roleList reads roles as the hand-off gives them (a comma-separated
// string) or as every output shows them (an array of strings).
type roleList string

func (rl *roleList) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*rl = roleList(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("roles must be an array of strings or a comma-separated string")
	}
	for _, r := range list {
		if strings.Contains(r, ",") {
			return fmt.Errorf("role %q holds a comma, which separates roles", sanitise(r, 64))
		}
	}
	*rl = roleList(strings.Join(list, ","))
	return nil
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
	if err := checkIdentity(req.UserID, req.Email, req.Name, string(req.Roles)); err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	req.UserID = userIDOf(req.UserID)
	ref := stores[0]
	h := ref.h
	id, token, hash, err := ref.store.NewCredential(r.Context(), req.UserID)
	if err != nil {
		return storeError(err)
	}
	ip := req.IPAddress
	if ip != "" {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return apiError(http.StatusBadRequest, "ip_address %q is not an IP address", sanitise(ip, 64))
		}
		ip = addr.Unmap().WithZone("").String()
	}
	s := h.newSession(r.Context(), id, req.UserID, hash, session.MethodAdmin, ip, req.UserAgent, "")
	s.Email, s.Name, s.Roles = sanitise(req.Email, maxValue), sanitise(req.Name, maxValue), sanitise(string(req.Roles), maxRoles)
	ended, err := ref.store.Create(r.Context(), s, h.policy, h.limit)
	if errors.Is(err, session.ErrLimitReached) {
		return apiError(http.StatusTooManyRequests, "user has %d active sessions", h.limit.Max)
	}
	if err != nil {
		h.abandon(s, err)
		return storeError(err)
	}
	h.recordLogin(nil, s, ended)
	// set_cookie is the first site's (sites without sign_in first, then in
	// address order); sites has every site's own.
	sites := mintedSites(h.storeKey, token)
	setCookie := h.cookies.siteCookie(token, h.policy.Lifetime).String()
	if len(sites) > 0 {
		setCookie = sites[0].SetCookie
	}
	return writeJSON(w, http.StatusCreated, mintResponse{
		ID: id, Token: token, ExpiresAt: rfc3339(h.policy.ExpiresAt(s)),
		SetCookie: setCookie, Sites: sites,
	})
}

// Interface guard
var _ caddy.AdminRouter = adminAPI{}
