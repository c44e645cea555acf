package sessionauth

import (
	"html/template"
	"net/http"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// sessionCard is one session as the page shows it.
type sessionCard struct {
	ID, Device, Kind, Browser, OS, Location, IP string
	SignedIn, SignedInAt, LastActive, LastAt    string
	Ended, EndReason                            string
	Current                                     bool
}

type sessionsPageData struct {
	Name, Endpoints, CSRF string
	Active, Ended         []sessionCard
	Others                int
	// With api_tokens: the user's live tokens and the longest lifetime.
	TokensOn    bool
	Tokens      []tokenCard
	MaxLifetime string
}

// tokenCard is one API token as the page lists it: never its value.
type tokenCard struct {
	ID, Name, Created, LastUsed, LastIP, Expires, ExpiresAt string
}

var endReasons = map[string]string{
	session.EndLogout: "Signed out", session.EndRevoked: "Signed out remotely",
	session.EndLimit: "Replaced by a newer sign-in", session.EndIPChange: "Ended: new network",
	session.EndCountryChange: "Ended: new country", session.EndExpired: "Expired",
}

func (h *Handler) renderSessions(w http.ResponseWriter, r *http.Request, cur *session.Session, list []*session.Session, now time.Time) error {
	data := sessionsPageData{Name: cur.Name, Endpoints: h.Endpoints, CSRF: csrfToken(cur), TokensOn: h.APITokens != nil}
	if data.TokensOn {
		data.MaxLifetime = humanDuration(time.Duration(h.APITokens.MaxLifetime))
	}
	if data.Name == "" {
		data.Name = cur.UserID
	}
	for _, s := range list {
		v := h.policy.View(s, now)
		if v.IsToken() {
			if v.Active() {
				exp := h.policy.ExpiresAt(v)
				lastUsed := "never"
				if v.LastActiveAt.After(v.CreatedAt) {
					lastUsed = relTime(v.LastActiveAt, now)
				}
				data.Tokens = append(data.Tokens, tokenCard{ID: v.ID, Name: v.Label,
					Created: relTime(v.CreatedAt, now), LastUsed: lastUsed, LastIP: orDefault(v.IP, "unknown"),
					Expires: exp.UTC().Format("2 Jan 2006"), ExpiresAt: exp.UTC().Format(time.RFC1123)})
			}
			continue
		}
		c := sessionCard{
			ID: v.ID, Device: orDefault(v.Device, "Unknown Device"), Kind: v.DeviceType,
			Browser: orDefault(v.Browser, "Unknown browser"), OS: orDefault(v.OS, "unknown OS"),
			Location: "Unknown location", IP: orDefault(v.IP, "unknown"),
			SignedIn: relTime(v.CreatedAt, now), SignedInAt: v.CreatedAt.UTC().Format(time.RFC1123),
			LastActive: relTime(v.LastActiveAt, now), LastAt: v.LastActiveAt.UTC().Format(time.RFC1123),
			Current: v.ID == cur.ID,
		}
		switch {
		case v.City != "" && v.Country != "":
			c.Location = v.City + ", " + v.Country
		case v.Country != "":
			c.Location = v.Country
		}
		if v.Active() {
			data.Active = append(data.Active, c)
			if !c.Current {
				data.Others++
			}
			continue
		}
		c.Ended, c.EndReason = relTime(v.EndedAt, now), orDefault(endReasons[v.EndReason], "Ended")
		data.Ended = append(data.Ended, c)
	}
	// The current session first, then by last activity (the store's order).
	for i, c := range data.Active {
		if c.Current && i > 0 {
			copy(data.Active[1:i+1], data.Active[:i])
			data.Active[0] = c
			break
		}
	}
	htmlHeaders(w)
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on the page's own forms, which the cross-site rule
	// must refuse.
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	return sessionsTemplate.Execute(w, data)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

var sessionsTemplate = template.Must(template.New("sessions").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Where you're signed in</title>
<style>
:root{--fg:#1b1f29;--muted:#5f6b7a;--line:#e3e7ee;--accent:#2553d8;--bad:#b42318;--bg:#f6f7fb}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:46rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.6rem;margin:.2rem 0 .3rem}h2{font-size:1.1rem;margin:2rem 0 .6rem;color:var(--muted)}
p.lead{color:var(--muted);margin:0 0 1.2rem}
.card{background:#fff;border:1px solid var(--line);border-radius:.8rem;padding:1rem 1.1rem;margin:.7rem 0;display:flex;gap:1rem;align-items:flex-start;flex-wrap:wrap}
.card.ended{opacity:.75}
.icon{width:2.2rem;color:var(--muted)}.icon svg{width:2rem;height:2rem;display:block}
.info{flex:1 1 16rem;min-width:0}
.title{font-weight:600;display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}
.badge{font-size:.75rem;font-weight:600;color:#0b6b3a;background:#dcf5e7;border-radius:1rem;padding:.1rem .6rem}
.meta{color:var(--muted);font-size:.92rem;overflow-wrap:anywhere}
form{margin:0}
button{font:inherit;cursor:pointer;border-radius:.5rem;padding:.45rem .9rem;border:1px solid var(--line);background:#fff;color:var(--bad)}
button:hover{border-color:var(--bad)}
.all{margin-top:1rem}.all button{background:var(--bad);color:#fff;border-color:var(--bad)}
.empty{color:var(--muted)}
button.create{color:var(--accent);border-color:var(--accent)}
form.card label{display:flex;flex-direction:column;gap:.2rem;flex:1 1 12rem}form.card input{font:inherit;padding:.4rem;border:1px solid var(--line);border-radius:.4rem}
@media (max-width:30rem){.card{padding:.9rem}.card form{width:100%}.card button{width:100%}}
</style></head>
<body><main>
<h1>Where you're signed in</h1>
<p class="lead">Signed in as {{.Name}}. If you don't recognise a session, sign it out.</p>
{{range .Active}}
<section class="card" aria-label="{{.Device}} session">
  <div class="icon" aria-hidden="true">{{template "icon" .Kind}}</div>
  <div class="info">
    <div class="title">{{.Device}}{{if .Current}} <span class="badge">This device</span>{{end}}</div>
    <div class="meta">{{.Browser}} on {{.OS}} · {{.Location}} · {{.IP}}</div>
    <div class="meta">Signed in <time title="{{.SignedInAt}}">{{.SignedIn}}</time> · Last active <time title="{{.LastAt}}">{{.LastActive}}</time></div>
  </div>
  {{if not .Current}}
  <form method="post" action="{{$.Endpoints}}/sessions/{{.ID}}/revoke">
    <input type="hidden" name="csrf" value="{{$.CSRF}}">
    <button type="submit">Sign out</button>
  </form>
  {{end}}
</section>
{{end}}
{{if .Others}}
<form class="all" method="post" action="{{.Endpoints}}/sessions/revoke-others">
  <input type="hidden" name="csrf" value="{{.CSRF}}">
  <button type="submit">Sign out all other sessions</button>
</form>
{{end}}
{{if .TokensOn}}
<h2>Access tokens</h2>
<p class="lead">For scripts and tools: send a token as <code>Authorization: Bearer …</code>. Revoke one you no longer use.</p>
{{range .Tokens}}
<section class="card" aria-label="Access token {{.Name}}">
  <div class="info">
    <div class="title">{{.Name}}</div>
    <div class="meta">Created {{.Created}} · Last used {{.LastUsed}} · Last IP {{.LastIP}} · Expires <time title="{{.ExpiresAt}}">{{.Expires}}</time></div>
  </div>
  <form method="post" action="{{$.Endpoints}}/tokens/{{.ID}}/revoke">
    <input type="hidden" name="csrf" value="{{$.CSRF}}">
    <button type="submit">Revoke</button>
  </form>
</section>
{{else}}
<p class="empty">No access tokens.</p>
{{end}}
<form class="card" method="post" action="{{.Endpoints}}/tokens">
  <input type="hidden" name="csrf" value="{{.CSRF}}">
  <label>Name <input name="name" required maxlength="100"></label>
  <label>Lifetime <input name="lifetime" placeholder="{{.MaxLifetime}} at most, e.g. 720h"></label>
  <button type="submit" class="create">Create token</button>
</form>
{{end}}
{{if .Ended}}
<h2>Recently signed out</h2>
{{range .Ended}}
<section class="card ended" aria-label="{{.Device}} session, ended">
  <div class="icon" aria-hidden="true">{{template "icon" .Kind}}</div>
  <div class="info">
    <div class="title">{{.Device}}</div>
    <div class="meta">{{.Browser}} on {{.OS}} · {{.Location}} · {{.IP}}</div>
    <div class="meta">{{.EndReason}} {{.Ended}} · signed in {{.SignedIn}}</div>
  </div>
</section>
{{end}}
{{end}}
</main></body></html>
{{define "icon"}}<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round">
{{- if eq . "mobile"}}<rect x="7" y="2.5" width="10" height="19" rx="2"/><path d="M11 18.5h2"/>
{{- else if eq . "tablet"}}<rect x="4.5" y="2.5" width="15" height="19" rx="2"/><path d="M11 18.5h2"/>
{{- else}}<rect x="3.5" y="4.5" width="17" height="11" rx="1.5"/><path d="M2 19.5h20"/>{{end -}}
</svg>{{end}}
`))
