package sessionauth

import "html/template"

// stepUpTemplate is the step-up page, "Confirm it's you" (SPEC 11): the
// account it confirms, and its way in (the provider's button, or the
// accounts form with the user name fixed); in the sign-in page's style,
// no script.
var stepUpTemplate = template.Must(template.ParseFS(templateFiles, "templates/stepup.html"))

// signInTemplate is the sign-in page: the accounts form and a button per
// provider, in the sessions page's style; no script.
var signInTemplate = template.Must(template.New("sign-in").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to {{.Host}}</title>
<style>
body{margin:0;background:#f6f7fb;color:#1b1f29;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:26rem;margin:0 auto;padding:2rem 1rem}
.card{background:#fff;border:1px solid #e3e7ee;border-radius:.8rem;padding:1.2rem 1.3rem}
h1{font-size:1.4rem;margin:0 0 1rem}
label{display:block;margin:.7rem 0 .2rem;font-weight:600}
input{box-sizing:border-box;width:100%;font:inherit;padding:.5rem .6rem;border:1px solid #c9d0db;border-radius:.5rem}
button,.button{display:block;box-sizing:border-box;width:100%;text-align:center;text-decoration:none;font:inherit;cursor:pointer;border-radius:.5rem;padding:.6rem 1rem;margin-top:1rem;border:1px solid #1f5fd1;background:#1f5fd1;color:#fff}
.button{background:#fff;color:#1f5fd1}
.error{background:#fdecea;border:1px solid #f5c2bd;color:#8a1c12;border-radius:.5rem;padding:.6rem .8rem;margin:0 0 1rem}
.notice{background:#eef3fd;border:1px solid #c6d6f5;color:#1b1f29;border-radius:.5rem;padding:.6rem .8rem;margin:0 0 1rem}
.or{text-align:center;color:#5f6b7a;margin:1.2rem 0 0}
</style></head><body><main><div class="card">
<h1>Sign in to {{.Host}}</h1>
{{if .Notice}}<p class="notice" role="status">{{.Notice}}</p>{{end}}
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Pending}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="next" value="{{.Next}}"><input type="hidden" name="pending" value="{{.Pending}}">
<p>Signing in as <strong>{{.User}}</strong>.</p>
<label for="code">Code from your authenticator app</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="\s*[0-9]{3}[ \-]?[0-9]{3}\s*" maxlength="9" required autofocus>
<button type="submit">Continue</button>
</form>
{{else}}
{{range .Providers}}<a class="button" href="{{.URL}}">Sign in with {{.Label}}</a>
{{end}}
{{if .Accounts}}{{if .Providers}}<p class="or">or with your user name</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="next" value="{{.Next}}">
<label for="username">User name</label>
{{if .User}}<input id="username" name="username" value="{{.User}}" readonly>{{else}}<input id="username" name="username" autocomplete="username" required autofocus>{{end}}
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>{{end}}
{{end}}
</div></main></body></html>
`))

// signedInTemplate moves the browser on to the page it was going to
// (landAfterProvider): at once by itself, or by its link.
var signedInTemplate = template.Must(template.New("signed-in").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="0;url={{.}}">
<title>Signed in</title>
<style>
body{margin:0;background:#f6f7fb;color:#1b1f29;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:26rem;margin:0 auto;padding:2rem 1rem}
a{color:#1f5fd1}
</style></head><body><main>
<p>Signed in. <a href="{{.}}">Continue</a></p>
</main></body></html>
`))
