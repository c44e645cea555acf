package sessionauth

import (
	"embed"
	"html/template"
)

// The gateway's own HTML pages: the sessions page, and the page of the
// "Not you?" link that also carries every problem a browser is shown.
//
//go:embed templates/*.html
var templateFiles embed.FS

var (
	sessionsTemplate = template.Must(template.ParseFS(templateFiles, "templates/sessions.html"))
	linkTemplate     = template.Must(template.ParseFS(templateFiles, "templates/link.html"))
)
