package sessionauth

import (
	"fmt"
	"net/http"
	"path"
	"strings"
)

// loginPath is one `login` entry: an exact path, or a prefix when the
// entry ends in *.
type loginPath struct {
	path   string
	prefix bool
}

func parseLoginPath(p string) (loginPath, error) {
	lp := loginPath{path: p}
	if strings.HasSuffix(p, "*") {
		lp.prefix, lp.path = true, strings.TrimSuffix(p, "*")
	}
	if !strings.HasPrefix(lp.path, "/") || strings.ContainsAny(lp.path, "*?#%\\;") ||
		(lp.path != cleanPath(lp.path) && !(lp.prefix && cleanPath(lp.path)+"/" == lp.path)) {
		return lp, fmt.Errorf("login path %q must be a clean absolute path, optionally ending in *", p)
	}
	return lp, nil
}

// cleanPath is path.Clean that keeps "/" for the empty path.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	return path.Clean(p)
}

// pathUnder reports whether p is base or below it.
func pathUnder(p, base string) bool {
	return p == base || strings.HasPrefix(p, base+"/")
}

// requestPath is the path session_auth matches on: the decoded path,
// cleaned, and whether the raw path was plain enough to be trusted for
// exemptions. A raw path with dot segments, empty segments ("//"),
// encoded slashes, dots, backslashes, '#' or ';', or a backslash, is never
// a login path: those are how a request names one path to the gateway and
// another to the upstream (an app that reads "//auth/x" with
// `new URL(path, base)` sees host "auth", path "/x").
func requestPath(r *http.Request) (clean string, plain bool) {
	clean = cleanPath(r.URL.Path)
	raw := r.URL.EscapedPath()
	plain = true
	lower := strings.ToLower(raw)
	for _, bad := range [...]string{"%2f", "%5c", "%2e", "%23", "%3b", "%25", "\\", ";"} {
		if strings.Contains(lower, bad) {
			plain = false
			break
		}
	}
	if plain && strings.Contains(r.URL.Path, "//") {
		plain = false
	}
	if plain {
		for seg := range strings.SplitSeq(r.URL.Path, "/") {
			if seg == "." || seg == ".." {
				plain = false
				break
			}
		}
	}
	return clean, plain
}

// isLogin reports whether a request whose path requestPath read may pass
// without a session as a sign-in hand-off. The query string plays no part.
func (h *Handler) isLogin(clean string, plain bool) bool {
	if !plain {
		return false
	}
	for _, lp := range h.logins {
		if lp.prefix {
			if strings.HasPrefix(clean, lp.path) || clean+"/" == lp.path {
				return true
			}
		} else if clean == lp.path {
			return true
		}
	}
	return false
}

// safeNext returns next when it is a same-origin path that a browser
// cannot read as another origin, else "/". It must start with exactly one
// "/", hold no backslash and no whitespace or control character anywhere.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || len(next) > 2048 {
		return "/"
	}
	for _, c := range next {
		if c == '\\' || c <= ' ' || c == 0x7f || (c >= 0x80 && c <= 0x9f) ||
			c == '\u00a0' || c == '\u1680' || (c >= '\u2000' && c <= '\u200f') ||
			c == '\u2028' || c == '\u2029' || c == '\u202f' || c == '\u205f' || c == '\u3000' || c == '\ufeff' {
			return "/"
		}
	}
	return next
}
