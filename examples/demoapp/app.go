// Package demoapp is the demo upstream behind session_auth: a sign-in form
// that hands a good password off to the gateway with Session-Login, and
// pages that show the identity headers the gateway forwards. It never
// sees a session cookie and keeps no session state of its own.
package demoapp

import (
	"crypto/subtle"
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/sessionauth/caddy-sessionauth/internal/endtext"
)

// Users are the demo accounts; every password is "demo".
var Users = map[string]struct{ Email, Name, Roles string }{
	"alice": {"alice@example.com", "Alice Liddell", "admin,editor"},
	"bob":   {"bob@example.com", "Bob Builder", "viewer"},
}

// Password is the demo accounts' password.
const Password = "demo"

// New returns the demo app's handler.
func New() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", loginForm)
	mux.HandleFunc("POST /login", login)
	mux.HandleFunc("POST /change-password", changePassword)
	mux.HandleFunc("GET /headers", headersJSON)
	mux.HandleFunc("/", home)
	return mux
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · session_auth demo</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2433}
h1{font-size:1.5rem}.card{border:1px solid #d8dde6;border-radius:.6rem;padding:1rem 1.25rem;margin:1rem 0}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eef0f4;overflow-wrap:anywhere}
@media (max-width:30rem){td,th{font-size:.85rem}.card{padding:.75rem}}
th{width:40%;font-weight:600}input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.2rem 0 .8rem}
button{font:inherit;padding:.45rem 1rem;border-radius:.4rem;border:1px solid #2f5bd3;background:#2f5bd3;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#2f5bd3}.error{color:#b42318}.muted{color:#667085}form.inline{display:inline}
.notice{background:#fff6e5;border:1px solid #f3c56b;border-radius:.4rem;padding:.5rem .75rem}
</style></head><body>
{{if eq .Title "Sign in"}}
<h1>Sign in</h1>
<div class="card">
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
{{if .Ended}}<p class="notice">{{.Ended}}</p>{{end}}
<form method="post" action="/login?next={{.Next}}">
<label>User <input name="username" autocomplete="username" value="alice"></label>
<label>Password <input name="password" type="password" autocomplete="current-password" placeholder="demo"></label>
<button type="submit">Sign in</button>
</form>
<p class="muted">Demo users: alice and bob, password <code>demo</code>.</p>
</div>
{{else}}
<h1>Hello, {{.Name}}</h1>
<p class="muted">This app knows you only from the headers session_auth forwards; it has no session of its own.</p>
<div class="card"><table>
{{range .Headers}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{end}}
</table></div>
<p>
<a href="/.auth/sessions">Where you're signed in</a> ·
<a href="/.auth/me">/.auth/me</a> ·
<form class="inline" method="post" action="/change-password"><button class="secondary" type="submit">Change password (signs out other sessions)</button></form>
<form class="inline" method="post" action="/.auth/logout?next=/login"><button type="submit">Sign out</button></form>
</p>
{{end}}
</body></html>`))

type kv struct{ K, V string }

// EndedMessages say why a session ended, keyed by the end_reason the
// gateway adds to its sign-in redirect as ?session_ended=.
var EndedMessages = endtext.Messages

func loginForm(w http.ResponseWriter, r *http.Request) {
	render(w, http.StatusOK, map[string]any{"Title": "Sign in", "Next": safeNext(r.URL.Query().Get("next")),
		"Ended": EndedMessages[r.URL.Query().Get("session_ended")]})
}

func login(w http.ResponseWriter, r *http.Request) {
	user := r.PostFormValue("username")
	next := safeNext(r.URL.Query().Get("next"))
	u, ok := Users[user]
	if !ok || subtle.ConstantTimeCompare([]byte(r.PostFormValue("password")), []byte(Password)) != 1 {
		render(w, http.StatusUnauthorized, map[string]any{"Title": "Sign in", "Next": next, "Error": "Wrong user or password."})
		return
	}
	// The whole hand-off: name the user; the gateway mints the session,
	// sets the cookie and removes these headers from what the browser sees.
	w.Header().Set("Session-Login", user)
	w.Header().Set("Session-Login-Email", u.Email)
	w.Header().Set("Session-Login-Name", u.Name)
	w.Header().Set("Session-Login-Roles", u.Roles)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// changePassword stands for any action after which other sessions must go.
func changePassword(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Session-Logout", "others")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func identity(r *http.Request) []kv {
	var out []kv
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-Auth-") {
			out = append(out, kv{k, strings.Join(v, ", ")})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
	return out
}

func home(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get("X-Auth-Name")
	if name == "" {
		name = r.Header.Get("X-Auth-User")
	}
	if name == "" {
		name = "anonymous"
	}
	render(w, http.StatusOK, map[string]any{"Title": "Home", "Name": name, "Headers": identity(r)})
}

// headersJSON echoes the identity headers, for curl and tests.
func headersJSON(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{}
	for _, h := range identity(r) {
		out[h.K] = h.V
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func render(w http.ResponseWriter, status int, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = page.Execute(w, data)
}

// safeNext keeps the post-sign-in redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t ") {
		return "/"
	}
	return next
}
