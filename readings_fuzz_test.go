package sessionauth

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// FuzzRuleReadings: for any request path, when the path read with every
// change some server makes at once (decoded once more, "\" as "/",
// ";parameters", controls and trailing dots and spaces dropped, cleaned)
// falls under /admin/* or is /exact, then Caddy's own path matcher or one
// of otherReadings' readings puts the request under that rule; readings
// are bounded and absolute.
func FuzzRuleReadings(f *testing.F) {
	for _, s := range []string{"/admin;x/panel", "/admin./panel", "/admin%252fpanel", `/admin\panel`, "/admin%5cpanel",
		"/admin%09/panel", "/exact/", "/exact.", "/exact;", "/exact%2f", "/exact%00", "/api/items/a%2Fb", "/x/..%252fadmin/y",
		"/admin%20/panel", "/ex%2561ct", "/admin%2e%2e/x"} {
		f.Add(s)
	}
	rules := []caddyhttp.MatchPath{{"/admin/*"}, {"/exact"}}
	for _, mp := range rules {
		if err := mp.Provision(caddy.Context{}); err != nil {
			f.Fatal(err)
		}
	}
	covered := func(r *http.Request) bool {
		for _, mp := range rules {
			if ok, _ := mp.MatchWithError(r); ok {
				return true
			}
		}
		return false
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil || u.Path == "" || u.Path[0] != '/' || u.RawQuery != "" {
			return
		}
		r := (&http.Request{Method: "GET", URL: u, Header: http.Header{}}).WithContext(
			context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		readings := otherReadings(r)
		if len(readings) > 2*maxReadings+1 {
			t.Fatalf("%q: %d readings", raw, len(readings))
		}
		ruled := covered(r)
		for _, p := range readings {
			if !strings.HasPrefix(p, "/") {
				t.Fatalf("%q read as %q", raw, p)
			}
			ruled = ruled || covered(readingRequest(r, p))
		}
		all := cutAtNUL(trimSegments(dropControls(dropParams(backslashes(decodeOnce(u.Path))))))
		all = strings.ToLower(path.Clean(all))
		if (strings.HasPrefix(all, "/admin/") || all == "/exact") && !ruled {
			t.Fatalf("%q reads as %q, under a rule, but no reading was judged by it (readings %q)", raw, all, readings)
		}
		if ruled && !mayReadOtherwise(r) && !covered(r) {
			t.Fatalf("%q: a reading is under a rule, but the cheap test skips it", raw)
		}
	})
}
