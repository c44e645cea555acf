package sessionauth

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// passkeysScript is the one script the gateway serves: the WebAuthn
// calls of the pages that have passkey buttons (SPEC 15), which keep
// CSP script-src 'self'.
//
//go:embed static/passkeys.js
var passkeysScript []byte

// addRoutes puts the passkeys part's routes in the table (p nil: off).
func (p *passkeySignIn) addRoutes(e *endpointRoutes) {
	if p == nil {
		return
	}
	page := func(f func(w http.ResponseWriter, r *http.Request) error) endpointFunc {
		return func(w http.ResponseWriter, r *http.Request, _ string) error { return f(w, r) }
	}
	post := func(f func(w http.ResponseWriter, r *http.Request) error) endpointFunc {
		return func(w http.ResponseWriter, r *http.Request, _ string) error {
			if r.Method != http.MethodPost {
				return methodNotAllowed(w, "POST")
			}
			return f(w, r)
		}
	}
	e.add([]route{
		{"GET /passkeys.js", page(serveScript)},
		{"/passkeys.js", func(w http.ResponseWriter, _ *http.Request, _ string) error { return methodNotAllowed(w, "GET, HEAD") }},
		{"/passkeys/login/begin", post(p.loginBegin)},
		{"/passkeys/login/finish", post(p.loginFinish)},
		{"/passkeys/second/begin", post(p.secondBegin)},
		{"/passkeys/second/finish", post(p.secondFinish)},
		{"/passkeys/register/begin", post(p.registerBegin)},
		{"/passkeys/register/finish", post(p.registerFinish)},
		{"/passkeys/invite/begin", post(p.inviteBegin)},
		{"/passkeys/invite/finish", post(p.inviteFinish)},
		{"GET /account/passkeys", page(p.servePage)},
		{"/account/passkeys", func(w http.ResponseWriter, _ *http.Request, _ string) error { return methodNotAllowed(w, "GET, HEAD") }},
		{"POST /account/passkeys/{rest}/remove", func(w http.ResponseWriter, r *http.Request, id string) error { return p.change(w, r, id, "") }},
		{"POST /account/passkeys/{rest}/rename", func(w http.ResponseWriter, r *http.Request, id string) error { return p.change(w, r, id, "rename") }},
	})
}

// serveScript serves passkeys.js: cacheable, never sniffed.
func serveScript(w http.ResponseWriter, r *http.Request) error {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/javascript; charset=utf-8")
	hdr.Set("Cache-Control", "public, max-age=3600")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(passkeysScript)
	return err
}

// scriptPageHeaders are htmlHeaders for a page that loads passkeys.js:
// that script from this origin, and its fetches to this origin.
func scriptPageHeaders(w http.ResponseWriter) {
	htmlHeaders(w)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}

// passkeyCard is one passkey as the page lists it.
type passkeyCard struct {
	ID, Name, Added, AddedAt, LastUsed string
	Warning                            bool // its sign count went back once
}

type passkeysPageData struct {
	Name, Endpoints, CSRF, Site string
	Passkeys                    []passkeyCard
	// Stale: a change asks for a step-up first.
	Stale bool
}

// servePage is GET {endpoints}/account/passkeys: the account's passkeys,
// with Add (script), rename and remove (forms); JSON on Accept.
func (p *passkeySignIn) servePage(w http.ResponseWriter, r *http.Request) error {
	cur, rec, err := p.signedInAccount(w, r)
	if cur == nil {
		return err
	}
	w.Header().Set("X-CSRF-Token", csrfToken(cur))
	now := p.h.now()
	data := passkeysPageData{Name: orDefault(cur.Name, cur.UserID), Endpoints: p.h.Endpoints, CSRF: csrfToken(cur),
		Site: siteLabel(p.h.BaseURL, r), Stale: p.stale(cur)}
	type keyJSON struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		AddedAt    string `json:"added_at"`
		LastUsedAt string `json:"last_used_at,omitempty"`
	}
	out := []keyJSON{}
	for _, k := range rec.Passkeys {
		id := base64.RawURLEncoding.EncodeToString(k.ID)
		c := passkeyCard{ID: id, Name: orDefault(k.Name, "Passkey"), Added: relTime(k.AddedAt, now),
			AddedAt: k.AddedAt.UTC().Format(time.RFC1123), LastUsed: "never", Warning: k.CloneWarning}
		j := keyJSON{ID: id, Name: c.Name, AddedAt: rfc3339(k.AddedAt)}
		if !k.LastUsedAt.IsZero() {
			c.LastUsed, j.LastUsedAt = relTime(k.LastUsedAt, now), rfc3339(k.LastUsedAt)
		}
		data.Passkeys = append(data.Passkeys, c)
		out = append(out, j)
	}
	if wantsJSON(r) {
		return writeJSON(w, http.StatusOK, out)
	}
	scriptPageHeaders(w)
	w.Header().Set("Referrer-Policy", "same-origin") // see renderSessions
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, pagePasskeys, data)
}

// change removes the passkey id (base64url), or renames it (form field
// name): same origin, CSRF, a recent sign-in; then back to the page.
func (p *passkeySignIn) change(w http.ResponseWriter, r *http.Request, id, op string) error {
	if crossSite(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInForm)
	cur, rec, err := p.signedInAccount(w, r)
	if cur == nil {
		return err
	}
	if !validCSRF(r, cur) {
		return writeJSON(w, http.StatusForbidden, errorBody{"csrf"})
	}
	credID, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(credID) == 0 {
		return answer(w, r, problemNoSuchPasskey)
	}
	name := ""
	if op == "rename" {
		if name = sanitise(strings.TrimSpace(r.PostFormValue("name")), maxPasskeyName); name == "" {
			return answerWithWay(w, r, problem{http.StatusBadRequest, "bad_request", "The passkey was not renamed", "Give it a name of at most 100 characters."},
				&wayOn{p.h.Endpoints + "/account/passkeys", "Back to your passkeys"})
		}
	} else if p.stale(cur) {
		if wantsPage(r) {
			w.Header().Set("Location", p.stepUpURL())
			w.WriteHeader(http.StatusSeeOther)
			return nil
		}
		return writeJSON(w, http.StatusForbidden, errorBody{"step_up_required"})
	}
	st, err := accountsPartOf(p.h.store)
	if err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	var was string
	_, err = st.UpdateAccount(r.Context(), rec.UserID, func(a *session.Account) error {
		for i, k := range a.Passkeys {
			if bytes.Equal(k.ID, credID) {
				was = orDefault(k.Name, "Passkey")
				if op == "rename" {
					a.Passkeys[i].Name = name
				} else {
					a.Passkeys = append(a.Passkeys[:i:i], a.Passkeys[i+1:]...)
				}
				return nil
			}
		}
		return session.ErrNotFound
	})
	if errors.Is(err, session.ErrNotFound) {
		return answer(w, r, problemNoSuchPasskey)
	}
	if err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	if op == "" {
		p.audit(r, cur, eventPasskeyRemoved, was)
		p.mailPasskey(r, cur, rec, eventPasskeyRemoved, was)
	}
	if !wantsPage(r) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	w.Header().Set("Location", p.h.Endpoints+"/account/passkeys")
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

var problemNoSuchPasskey = problem{http.StatusNotFound, "not_found", "No such passkey",
	"That passkey is not one of your account's: it may have been removed already."}

// audit records and logs an event of the passkeys page, its reason the
// passkey's name.
func (p *passkeySignIn) audit(r *http.Request, cur *session.Session, typ, name string) {
	now := p.h.now()
	e := eventOf(cur, typ, now, name)
	e.IP, e.Actor = clientIP(r), session.ActorSelf
	p.h.logEvent(e)
	if err := p.h.store.Record(r.Context(), e, p.h.policy); err != nil {
		p.h.logger.Error("recording "+typ, zap.String("user_id", cur.UserID), zap.Error(err))
	}
}
