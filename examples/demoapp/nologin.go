package demoapp

import (
	"html/template"
	"net/http"
)

// NewNoLogin returns the stand-in for an app with no login of its own
// (`demoapp -no-login`): every page shows who the gateway says is signed
// in and the identity headers it forwarded, with a Sign out button that
// posts to the gateway. It has no /login, so nothing it answers can hand
// a sign-in off: with `sign_in`, the gateway's own form is the only way in.
func NewNoLogin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /headers", headersJSON)
	mux.HandleFunc("/", noLoginHome)
	return mux
}

var noLoginPage = template.Must(template.New("nologin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>No-login app · session_auth demo</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2433}
h1{font-size:1.5rem}.card{border:1px solid #d8dde6;border-radius:.6rem;padding:1rem 1.25rem;margin:1rem 0}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eef0f4;overflow-wrap:anywhere}
@media (max-width:30rem){td,th{font-size:.85rem}.card{padding:.75rem}}
th{width:40%;font-weight:600}a{color:#2f5bd3}.muted{color:#667085}form.inline{display:inline}
button{font:inherit;padding:.45rem 1rem;border-radius:.4rem;border:1px solid #2f5bd3;background:#2f5bd3;color:#fff;cursor:pointer}
</style></head><body>
<h1>Hello, {{.Name}}</h1>
{{if .User}}<p>This app has no login of its own: the gateway signed you in as <b>{{.User}}</b>.</p>
{{else}}<p>No one is signed in: the gateway in front of this app should have sent you to its sign-in page.</p>{{end}}
<div class="card"><table>
{{range .Headers}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{else}}<tr><td class="muted">No identity headers reached the app.</td></tr>{{end}}
</table></div>
<p>
<a href="/.auth/sessions">Where you're signed in</a> ·
<form class="inline" method="post" action="/.auth/logout?next=/"><button type="submit">Sign out</button></form>
</p>
</body></html>`))

func noLoginHome(w http.ResponseWriter, r *http.Request) {
	user := r.Header.Get("X-Auth-User")
	name := r.Header.Get("X-Auth-Name")
	if name == "" {
		name = user
	}
	if name == "" {
		name = "anonymous"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = noLoginPage.Execute(w, map[string]any{"Name": name, "User": user, "Headers": identity(r)})
}
