package sessionauth

import (
	"crypto/hmac"
	"errors"
	"html/template"
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
	if !hmac.Equal([]byte(token), []byte(revokeToken(s))) {
		return h.linkPage(w, r, http.StatusNotFound, invalid)
	}
	now := h.now()
	data := linkData{Device: s.Device, Browser: s.Browser, OS: s.OS, IP: s.IP, Location: placeOf(s.IP, s.City, s.Country),
		When: relTime(s.CreatedAt, now), Site: siteLabel(h, r), Account: orDefault(s.Email, orDefault(s.Name, s.UserID)), Home: orDefault(h.BaseURL, "") + "/"}
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

var linkTemplate = template.Must(template.New("link").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{margin:0;background:#f6f7fb;color:#1b1f29;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:32rem;margin:0 auto;padding:2rem 1rem}
.card{background:#fff;border:1px solid #e3e7ee;border-radius:.8rem;padding:1.2rem 1.3rem}
h1{font-size:1.4rem;margin:0 0 .6rem}.meta{color:#5f6b7a}
button{font:inherit;cursor:pointer;border-radius:.5rem;padding:.55rem 1rem;border:1px solid #b42318;background:#b42318;color:#fff;margin-top:1rem}
</style></head><body><main><div class="card">
<h1>{{.Title}}</h1>
{{if .Account}}<p>A sign-in to <strong>{{.Account}}</strong> on <strong>{{.Site}}</strong>:</p>{{end}}
{{if .Device}}<p class="meta">{{.Device}} · {{.Browser}} on {{.OS}}{{if .Location}} · {{.Location}}{{end}}{{if .IP}} · {{.IP}}{{end}} · signed in {{.When}}</p>{{end}}
{{if .Text}}<p>{{.Text}}</p>{{end}}
{{if .Confirm}}
<p>If this sign-in wasn't you, sign that session out. You will not be signed in by this.</p>
<form method="post"><button type="submit">Sign out this session</button></form>
<p class="meta">If it was you, nothing needs doing: <a href="{{.Home}}">It was me</a> takes you to {{.Site}} and changes nothing, or just close this page.</p>
{{end}}
{{if and .Account (not .Confirm)}}<p><a href="{{.Home}}">Go to {{.Site}}</a></p>{{end}}
</div></main></body></html>
`))
