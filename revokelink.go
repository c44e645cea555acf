package sessionauth

import (
	"crypto/hmac"
	"errors"
	"net/http"
	"strings"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// serveRevokeLink answers the "Not you?" link of a notification. The token
// alone authorises it, so it is exempt from the cross-site rule; GET only
// shows what the link would do (mail scanners follow links), POST does it.
// Once the session has ended the link does nothing more.
func (h *Handler) serveRevokeLink(w http.ResponseWriter, r *http.Request) error {
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
		return h.linkPage(w, r, http.StatusNotFound, invalid)
	}
	ctx, cancel := h.storeContext(r.Context())
	defer cancel()
	s, err := h.store.Get(ctx, id)
	if errors.Is(err, session.ErrNotFound) {
		return h.linkPage(w, r, http.StatusNotFound, invalid)
	}
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	if !hmac.Equal([]byte(token), []byte(h.linkToken(s))) {
		return h.linkPage(w, r, http.StatusNotFound, invalid)
	}
	now := h.now()
	data := linkData{Device: s.Device, Browser: s.Browser, OS: s.OS, IP: s.IP, Location: placeOf(s.IP, s.City, s.Country),
		When: relTime(s.CreatedAt, now), Site: siteLabel(h, r), Account: orDefault(s.Email, orDefault(s.Name, s.UserID)), Home: orDefault(h.BaseURL, "") + "/", Password: h.passwordLink()}
	if !h.policy.View(s, now).Active() {
		data.Title, data.Text = "This session has already ended", "Nothing more to do."
		return h.linkPage(w, r, http.StatusGone, data)
	}
	if r.Method != http.MethodPost {
		data.Title, data.Confirm = "Sign out this session?", true
		return h.linkPage(w, r, http.StatusOK, data)
	}
	ended, err := h.store.End(ctx, id, now, session.EndRevoked, session.ActorLink, h.policy)
	if errors.Is(err, session.ErrNotFound) {
		data.Title, data.Text = "This session has already ended", "Nothing more to do."
		return h.linkPage(w, r, http.StatusGone, data)
	}
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	h.recordEnded(r, []*session.Session{ended}, now, session.EndRevoked, session.ActorLink)
	data.Title = "Signed out"
	data.Text = "That session is signed out. If it wasn't you, change your password on " + data.Site + " now."
	return h.linkPage(w, r, http.StatusOK, data)
}

type linkData struct {
	Title, Text, Site, Account, Home        string
	Password                                string // where to change the password; empty: no link
	Device, Browser, OS, IP, Location, When string
	Confirm                                 bool
}

func (h *Handler) linkPage(w http.ResponseWriter, r *http.Request, status int, d linkData) error {
	htmlHeaders(w)
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	return linkTemplate.Execute(w, d)
}
