package sessionauth

import (
	"embed"
	"html/template"
)

//go:embed templates/*.html
var pageFiles embed.FS

// pages are the gateway's HTML pages kept as files.
var pages = template.Must(template.ParseFS(pageFiles, "templates/*.html"))
