package sessionauth

import (
	"net/http"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// fileStore is the running config's file store that ?path= names (the
// only one when it names none): the one a backup or a compaction is of.
func fileStore(r *http.Request, stores []storeRef, what string) (*session.File, error) {
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
		return nil, apiError(http.StatusNotFound, "no file store (with that path) in the running config: %s", what)
	case 1:
		return files[0], nil
	default:
		return nil, apiError(http.StatusBadRequest, "the config has several file stores: name one with ?path=")
	}
}

// backup answers GET /session-auth/backup: a consistent copy of the file
// store, streamed while the gateway serves (`caddy sessions backup`).
// With several file stores in the config, ?path= names one.
func (a adminAPI) backup(w http.ResponseWriter, r *http.Request, stores []storeRef) error {
	f, err := fileStore(r, stores, "a backup copies the file store; back Redis up with Redis's own tools")
	if err != nil {
		return err
	}
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

// compactResult is the answer of POST /session-auth/compact.
type compactResult struct {
	Path        string `json:"path"`
	BytesBefore int64  `json:"bytes_before"`
	BytesAfter  int64  `json:"bytes_after"`
}

// compact answers POST /session-auth/compact: the file store writes a
// compacted copy of its file and goes on with it, giving back the space
// of expired records (`caddy sessions compact`). Writes wait meanwhile.
func (a adminAPI) compact(w http.ResponseWriter, r *http.Request, stores []storeRef) error {
	f, err := fileStore(r, stores, "compaction gives back the file store's space; Redis frees memory itself")
	if err != nil {
		return err
	}
	rep, err := f.Compact()
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, http.StatusOK, compactResult{Path: rep.Path, BytesBefore: rep.Before, BytesAfter: rep.After})
}
