package sessionauth

import "html/template"

// pages are the pages of session_require and API tokens (templates.go
// holds the others).
var pages = template.Must(template.ParseFS(templateFiles, "templates/forbidden.html", "templates/token.html"))
