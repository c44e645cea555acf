package sessionauth

import "html/template"

// pages are the pages of session_require, API tokens and the sign-out
// confirmation (templates.go holds the others).
var pages = template.Must(template.ParseFS(templateFiles, "templates/forbidden.html", "templates/token.html", "templates/logout.html"))
