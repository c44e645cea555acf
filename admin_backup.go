package sessionauth

import (
	"net/http"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// backup answers GET /session-auth/backup: a consistent copy of the file
// store, streamed while the gateway serves (`caddy sessions backup`).
// With several file stores in the config, ?path= names one.
func (a adminAPI) backup(w http.ResponseWriter, r *http.Request, stores []storeRef) error {
	var files []*session.File
	for _, ref := range stores {
		if f, ok := session.As[*session.File](ref.store); ok {
			if p := r.URL.Query().Get("path"); p == "" || p == f.Path() {
				files = append(files, f)
			}
		}
	}
	switch len(files) {
	case 0:
		return apiError(http.StatusNotFound, "no file store (with that path) in the running config: a backup copies the file store; back Redis up with Redis's own tools")
	case 1:
	default:
		return apiError(http.StatusBadRequest, "the config has several file stores: name one with ?path=")
	}
	f := files[0]
	if _, err := f.Size(); err != nil {
		return storeError(err) // before the status line: an error the CLI can show
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Store-Path", f.Path())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// Past the status line an error can only cut the copy short, which
	// the CLI's check of the copy finds (its pages are missing).
	_, _ = f.Backup(w)
	return nil
}
