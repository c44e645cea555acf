package sessionauth

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"path"
)

// The gateway's own HTML pages, one file each under templates/, drawn in
// templates/layout.html (its style, and the parts pages share).
//
//go:embed templates/*.html
var templateFiles embed.FS

// The pages, by file name.
const (
	pageSignIn    = "signin.html"
	pageStepUp    = "stepup.html"
	pageSignedIn  = "signed-in.html"
	pageSessions  = "sessions.html"
	pageLink      = "link.html" // the "Not you?" link's, and every problem's
	pageForbidden = "forbidden.html"
	pageToken     = "token.html"
	pageLogout    = "logout.html"
	// The account page (accountpage.go) and what its forms show.
	pageAccount      = "account.html"
	pageAccountTOTP  = "account-totp.html"
	pageAccountCodes = "account-codes.html"
	pagePasskeys     = "passkeys.html"
	pageAdmin        = "admin.html" // the admin console (admin_console.go)
)

const layoutFile = "layout.html"

var pageTemplates = parsePages(templateFiles)

// parsePages parses each page over its own copy of the layout: the pages
// define the same blocks (title, content), so they cannot share one set.
func parsePages(files fs.FS) map[string]*template.Template {
	layout := template.Must(template.ParseFS(files, "templates/"+layoutFile))
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := make(map[string]*template.Template, len(names))
	for _, name := range names {
		if path.Base(name) == layoutFile {
			continue
		}
		pages[path.Base(name)] = template.Must(template.Must(layout.Clone()).ParseFS(files, name))
	}
	return pages
}

// renderPage writes the page (one of the page* names) with data.
func renderPage(w io.Writer, page string, data any) error {
	t, ok := pageTemplates[page]
	if !ok {
		return fmt.Errorf("no page template %q", page)
	}
	return t.ExecuteTemplate(w, "layout", data)
}
