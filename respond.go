package sessionauth

import (
	"encoding/json"
	"net/http"
	"strings"
)

type errorBody struct {
	Error string `json:"error"`
}

// writeJSON answers with v as JSON; gateway answers are never cached.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // a client gone away is not our error
	return nil
}

// htmlHeaders are the headers of the gateway's own HTML pages: never
// cached, never framed, no script, forms to this origin only.
func htmlHeaders(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", pageCSP("'self'"))
}

// pageCSP is the pages' Content-Security-Policy, with formAction the
// sources a form may post to, and be redirected to after posting.
func pageCSP(formAction string) string {
	return "default-src 'none'; style-src 'unsafe-inline'; form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
}

// problem is an answer the gateway gives in the app's place: a JSON error
// code for API clients, and for a person in a browser a page in words
// saying what happened and what to do.
type problem struct {
	status      int
	code        string // the JSON body's "error"
	title, text string // the page's
}

// answer writes p as a page to a browser (a request that accepts HTML and
// does not ask for JSON) and as JSON to anything else.
func answer(w http.ResponseWriter, r *http.Request, p problem) error {
	return answerWithWay(w, r, p, nil)
}

// wayOn is a link a problem page offers to go on from it.
type wayOn struct{ Href, Label string }

// answerWithWay is answer, with a way on from the page (none when nil).
func answerWithWay(w http.ResponseWriter, r *http.Request, p problem, way *wayOn) error {
	if r == nil || !wantsPage(r) {
		return writeJSON(w, p.status, errorBody{p.code})
	}
	htmlHeaders(w)
	w.WriteHeader(p.status)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, pageLink, linkData{Title: p.title, Text: p.text, Way: way})
}

// wantsPage: a browser navigation or form submission, which accepts HTML;
// an API client asking for JSON gets JSON whatever else it accepts.
func wantsPage(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html") && !wantsJSON(r)
}

// The problems people meet, in their words.
var (
	problemStoreUnavailable = problem{http.StatusServiceUnavailable, "store_unavailable",
		"Signing in is unavailable for a moment",
		"The service that keeps track of sign-ins is not answering. Nothing is lost: try again in a few seconds."}
	problemRateLimited = problem{http.StatusTooManyRequests, "rate_limited",
		"Too many attempts",
		"There were too many attempts from your network. Wait a minute, then try again."}
	problemTooManySessions = problem{http.StatusTooManyRequests, "too_many_sessions",
		"You are signed in on too many devices",
		"Sign out on another device (from its “Where you're signed in” page), then sign in here again."}
	problemCrossSite = problem{http.StatusForbidden, "cross_site_request",
		"This request came from another site",
		"Another site tried to act on your behalf here, so nothing was done. If it was you, go back to this site and try again from its own page."}
	problemFormExpired = problem{http.StatusForbidden, "csrf_token_invalid",
		"The sign-in form has expired",
		"Go back, reload the sign-in page and try again."}
	problemBadForm = problem{http.StatusBadRequest, "bad_form",
		"The sign-in form could not be read",
		"Go back, reload the sign-in page and try again."}
	problemUnknownProvider = problem{http.StatusNotFound, "unknown_provider",
		"There is no such sign-in here",
		"Go back to the sign-in page and choose one of the ways in it offers."}
	problemNoAccounts = problem{http.StatusNotFound, "not_found",
		"There is no password sign-in here",
		"This site signs you in with one of the providers on its sign-in page."}
	problemBadHandOff = problem{http.StatusBadGateway, "bad_handoff",
		"The sign-in could not be completed",
		"The application answered with an account the gateway cannot accept. Nothing was signed in; the site's operator has been told in the log."}
)
