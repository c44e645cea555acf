package sessionauth

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Rules hold however the upstream reads the path (SPEC 12). Caddy's
// matchers judge the decoded, cleaned path; an upstream may read the same
// request otherwise: Tomcat and Jetty drop ";parameters", IIS and Windows
// take "\" for "/" and drop a segment's trailing dots and spaces, a proxy
// or framework may decode once more, WHATWG URL parsers drop tabs and
// newlines, C code stops at a NUL. session_auth, which runs on every
// request, judges each such reading of a path that is not plain by the
// session_require rules of its server, and refuses the request as a rule
// would when any reading falls under a rule the request does not pass.
// A path that no rule covers in any reading is left alone.

// pathRule is one session_require handler with the matcher sets of the
// routes that lead to it: all must match for the rule to hold.
type pathRule struct {
	chain []caddyhttp.MatcherSets
	q     *Require
}

// pathRules are the rules of the server a session_auth is in, collected
// on first use: when session_auth is provisioned, the routes after it
// are not yet.
type pathRules struct {
	srv  *caddyhttp.Server
	once sync.Once
	list []pathRule
}

func (p *pathRules) get() []pathRule {
	if p == nil {
		return nil
	}
	p.once.Do(func() {
		if p.srv != nil {
			p.list = collectRules(p.srv.Routes, nil, nil)
		}
	})
	return p.list
}

// collectRules walks routes and the subroutes they hold (the Caddyfile's
// site blocks, handle, route) for session_require handlers.
func collectRules(routes caddyhttp.RouteList, chain []caddyhttp.MatcherSets, out []pathRule) []pathRule {
	for _, rt := range routes {
		c := chain
		if len(rt.MatcherSets) > 0 {
			c = append(chain[:len(chain):len(chain)], rt.MatcherSets)
		}
		for _, hd := range rt.Handlers {
			switch v := hd.(type) {
			case *Require:
				out = append(out, pathRule{chain: c, q: v})
			case *caddyhttp.Subroute:
				out = collectRules(v.Routes, c, out)
			}
		}
	}
	return out
}

// matches reports whether the rule holds for r as its routes would see it.
func (pr pathRule) matches(r *http.Request) bool {
	for _, sets := range pr.chain {
		if ok, err := sets.AnyMatchWithError(r); !ok || err != nil {
			return false
		}
	}
	return true
}

// mayReadOtherwise is the cheap test of every request: whether its raw
// path is not plain in a way some server reads differently, or ends in
// "/" (an exact rule also holds with a trailing "/").
func mayReadOtherwise(r *http.Request) bool {
	p := r.URL.Path
	if len(p) > 1 && p[len(p)-1] == '/' {
		return true
	}
	if strings.ContainsAny(r.URL.RawPath, ";\\%") || strings.ContainsAny(p, ";\\%") {
		return true
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < ' ' || c == 0x7f || ((c == '.' || c == ' ') && (i+1 == len(p) || p[i+1] == '/')) {
			return true
		}
	}
	return false
}

// maxReadings bounds the work one request can cause.
const maxReadings = 64

// otherReadings are the paths, cleaned as Caddy's path matcher cleans
// them (with and without a trailing "/"), that servers may read r's path
// as, other than the one Caddy's matchers already judged.
func otherReadings(r *http.Request) []string {
	seen := map[string]bool{caddyhttp.CleanPath(r.URL.Path, true): true}
	var out []string
	add := func(p string) {
		for _, c := range [...]string{caddyhttp.CleanPath(p, true), cleanPath(p)} {
			if c != "" && c[0] == '/' && !seen[c] && len(seen) <= 2*maxReadings {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	// Every combination of the steps, in this order; each step applies
	// to what the ones before it gave, so a path with nothing to change
	// costs no more than the steps' looks.
	seq := []string{r.URL.Path}
	for _, step := range [...]func(string) string{decodeOnce, backslashes, dropParams, dropControls, trimSegments, cutAtNUL} {
		for _, p := range seq {
			if q := step(p); q != p && !slices.Contains(seq, q) && len(seq) < maxReadings {
				seq = append(seq, q)
			}
		}
	}
	for _, p := range seq {
		add(p)
	}
	return out
}

// decodeOnce decodes percent escapes once more, as a second decoding
// layer would; a malformed escape stays as it is.
func decodeOnce(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	if d, err := url.PathUnescape(p); err == nil {
		return d
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && ishex(p[i+1]) && ishex(p[i+2]) {
			b.WriteByte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func ishex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func backslashes(p string) string { return strings.ReplaceAll(p, `\`, "/") }

// dropParams drops each segment's ";parameters".
func dropParams(p string) string {
	if !strings.Contains(p, ";") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	return strings.Join(segs, "/")
}

// dropControls drops control characters wherever they are.
func dropControls(p string) string {
	return strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return -1
		}
		return c
	}, p)
}

// trimSegments drops each segment's trailing dots, spaces and control
// characters (but keeps the dot segments "." and "..").
func trimSegments(p string) string {
	if !slices.ContainsFunc(strings.Split(p, "/"), func(s string) bool { return s != "." && s != ".." && s != "" && trimmed(rune(s[len(s)-1])) }) {
		return p
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if s != "." && s != ".." {
			segs[i] = strings.TrimRightFunc(s, trimmed)
		}
	}
	return strings.Join(segs, "/")
}

func trimmed(c rune) bool { return c == '.' || c <= ' ' || c == 0x7f }

func cutAtNUL(p string) string {
	p, _, _ = strings.Cut(p, "\x00")
	return p
}

// readingRequest is r with its path read as p, for the matchers: its own
// replacer and a copy of its vars, so that what matchers record
// (path_regexp's captures) stays off the real request.
func readingRequest(r *http.Request, p string) *http.Request {
	u := *r.URL
	u.Path, u.RawPath = p, ""
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	vars = maps.Clone(vars)
	if vars == nil {
		vars = map[string]any{}
	}
	rr := r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
	rr.URL = &u
	caddyhttp.NewTestReplacer(rr) // the request's placeholders, for expression matchers
	return rr
}

// refusedByReading answers r as the first rule would that one of its
// path's other readings falls under and that the identity does not pass;
// done reports that it did.
func (h *Handler) refusedByReading(w http.ResponseWriter, r *http.Request, id *identity) (done bool, err error) {
	if id.login || !mayReadOtherwise(r) {
		return false, nil
	}
	rules := h.rules.get()
	if len(rules) == 0 {
		return false, nil
	}
	for _, p := range otherReadings(r) {
		rr := readingRequest(r, p)
		for _, rule := range rules {
			if !rule.matches(rr) || rule.q.passes(id, h.now()) {
				continue
			}
			if c := h.logger.Check(zap.InfoLevel, "path that a server may read as one a rule covers: answered as the rule"); c != nil {
				c.Write(zap.String("path", sanitise(r.URL.EscapedPath(), 256)), zap.String("read_as", sanitise(p, 256)))
			}
			return rule.q.judge(w, r, id)
		}
	}
	return false, nil
}
