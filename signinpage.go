package sessionauth

import "html/template"

// stepUpTemplate is the step-up page, "Confirm it's you" (SPEC 11): the
// account it confirms, and its way in (the provider's button, or the
// accounts form with the user name fixed); in the sign-in page's style,
// no script.
var stepUpTemplate = template.Must(template.ParseFS(templateFiles, "templates/stepup.html", "templates/signin-parts.html"))

// signInTemplate is the sign-in page: the accounts form and a button per
// provider, in the sessions page's style; no script.
var signInTemplate = template.Must(template.ParseFS(templateFiles, "templates/signin.html", "templates/signin-parts.html"))

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
