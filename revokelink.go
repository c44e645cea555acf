package sessionauth

import (
	"context"
	"crypto/hmac"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// serveRevokeLink answers the "Not you?" link of a notification. The token
// alone authorises it, so it is exempt from the cross-site rule; GET only
// shows what the link would do (mail scanners follow links), POST does it.
// Once the session has ended the link does nothing more.
func (ss *selfService) serveRevokeLink(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, POST")
	}
	w.Header().Set("Referrer-Policy", "no-referrer") // the link's token is in the URL
	token := r.URL.Query().Get("token")
	id, mac, _ := strings.Cut(token, ".")
	// An unknown id and a wrong MAC get the same answer: telling them apart
	// would let anyone learn which session ids exist.
	invalid := linkData{Title: "This link is not valid", Text: "It may be incomplete, or the session it was for is long gone. Check that you opened the whole link from the message."}
	if !session.ValidID(id) || len(mac) != 32 {
		return ss.linkPage(w, r, http.StatusNotFound, invalid)
	}
	ctx := r.Context()
	s, err := ss.store.Get(ctx, id)
	if errors.Is(err, session.ErrNotFound) {
		return ss.linkPage(w, r, http.StatusNotFound, invalid)
	}
	if err != nil {
		return ss.host.storeUnavailable(w, r, err)
	}
	if !hmac.Equal([]byte(token), []byte(ss.host.linkToken(s))) {
		return ss.linkPage(w, r, http.StatusNotFound, invalid)
	}
	now := ss.now()
	// What the link ends (SPEC 12): a session and the tokens it made; a
	// token_created link, the token and the session that made it, with
	// that session's other tokens. The page shows the session the person
	// would recognise: the one that signed in.
	target := s
	if s.IsToken() && s.Parent != "" {
		if p, err := ss.store.Get(ctx, s.Parent); err == nil && p.UserID == s.UserID {
			target = p
		} else if !errors.Is(err, session.ErrNotFound) && err != nil {
			return ss.host.storeUnavailable(w, r, err)
		}
	}
	tokens, err := ss.liveTokensOf(ctx, target, now)
	if err != nil {
		return ss.host.storeUnavailable(w, r, err)
	}
	if s.IsToken() && ss.policy.View(s, now).Active() && !slices.ContainsFunc(tokens, func(t *session.Session) bool { return t.ID == s.ID }) {
		tokens = append(tokens, s) // its maker is gone from the store
	}
	data := linkData{Device: target.Device, Browser: target.Browser, OS: target.OS, IP: target.IP, Location: placeOf(target.IP, target.City, target.Country),
		When: relTime(target.CreatedAt, now), Site: siteLabel(ss.baseURL, r), Account: orDefault(s.Email, orDefault(s.Name, s.UserID)), Home: orDefault(ss.baseURL, "") + "/", Password: ss.host.passwordLink()}
	for _, t := range tokens {
		data.Tokens = append(data.Tokens, t.Label)
	}
	targetActive := !target.IsToken() && ss.policy.View(target, now).Active()
	if !targetActive && len(tokens) == 0 {
		data.Title, data.Text = "This session has already ended", "Nothing more to do."
		return ss.linkPage(w, r, http.StatusGone, data)
	}
	switch {
	case s.IsToken() && target.IsToken():
		data.Button = "Revoke the token"
	case s.IsToken():
		data.Button = "Revoke the token and sign out that session"
	case !targetActive:
		data.Button = "Revoke its access tokens"
	}
	if r.Method != http.MethodPost {
		data.Title, data.Confirm = "Sign out this session?", true
		if s.IsToken() {
			data.Title = "Was this access token yours?"
		} else if !targetActive {
			data.Title = "That session has ended, but its access tokens still work"
		}
		return ss.linkPage(w, r, http.StatusOK, data)
	}
	var ended []*session.Session
	if !target.IsToken() {
		ended, err = ss.store.EndWithTokens(ctx, target.ID, now, session.EndRevoked, session.ActorLink, ss.policy)
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			return ss.host.storeUnavailable(w, r, err)
		}
	}
	if s.IsToken() && !slices.ContainsFunc(ended, func(e *session.Session) bool { return e.ID == s.ID }) {
		e, err := ss.store.End(ctx, s.ID, now, session.EndRevoked, session.ActorLink, ss.policy)
		switch {
		case err == nil:
			ended = append(ended, e)
		case !errors.Is(err, session.ErrNotFound):
			return ss.host.storeUnavailable(w, r, err)
		}
	}
	if len(ended) == 0 {
		data.Title, data.Text, data.Tokens = "This session has already ended", "Nothing more to do.", nil
		return ss.linkPage(w, r, http.StatusGone, data)
	}
	ss.host.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorLink, at: now, ctx: r.Context()})
	data.Title = "Signed out"
	data.Text = "That session is signed out. If it wasn't you, change your password on " + data.Site + " now."
	if !targetActive {
		data.Title, data.Text = "Access tokens revoked", "The access tokens that session made no longer work. If it wasn't you, change your password on "+data.Site+" now."
	}
	return ss.linkPage(w, r, http.StatusOK, data)
}

// liveTokensOf lists the active API tokens that s made, newest first.
func (ss *selfService) liveTokensOf(ctx context.Context, s *session.Session, now time.Time) ([]*session.Session, error) {
	if s.IsToken() {
		return nil, nil
	}
	list, err := ss.store.List(ctx, s.UserID, now, ss.policy)
	if err != nil {
		return nil, err
	}
	var out []*session.Session
	for _, t := range list {
		if t.IsToken() && t.Parent == s.ID && ss.policy.View(t, now).Active() {
			out = append(out, t)
		}
	}
	return out, nil
}

type linkData struct {
	Title, Text, Site, Account, Home        string
	Password                                string // where to change the password; empty: no link
	Device, Browser, OS, IP, Location, When string
	Confirm                                 bool
	Tokens                                  []string // the names of the access tokens the link ends
	Button                                  string   // the confirm button's words; empty: sign out the session
	Way                                     *wayOn   // a problem page's way on
}

func (ss *selfService) linkPage(w http.ResponseWriter, r *http.Request, status int, d linkData) error {
	htmlHeaders(w)
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, pageLink, d)
}
