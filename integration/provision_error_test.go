package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An error found when the config is loaded (not when it is adapted) is
// said first, in a log line that starts with the directive and its reason,
// before Caddy's own report, which ends a long chain of module names with
// the same sentence.
func TestProvisionErrorSaysTheReasonFirst(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, site, reason string
	}{
		{"a missing GeoIP database", "session_auth {\n\t\tstore memory\n\t\tgeoip " + filepath.Join(dir, "missing.mmdb") + "\n\t}",
			"session_auth: geoip " + filepath.Join(dir, "missing.mmdb") + ": "},
		{"same_site none on a plain-HTTP site", "session_auth {\n\t\tstore memory\n\t\tcookie {\n\t\t\tsame_site none\n\t\t}\n\t}",
			"session_auth: cookie same_site none needs a Secure cookie, and this site is plain HTTP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".Caddyfile")
			text := "{\n\tadmin off\n\tpersist_config off\n}\nhttp://localhost:1 {\n\t" + tc.site + "\n\trespond ok\n}\n"
			if err := os.WriteFile(cf, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := caddyCLI(t, dir, "validate", "--config", cf, "--adapter", "caddyfile")
			if err == nil {
				t.Fatalf("validate passed:\n%s", out)
			}
			logAt := strings.Index(out, tc.reason)
			chainAt := strings.Index(out, "provision http.handlers.session_auth")
			if logAt < 0 || chainAt < 0 || logAt > chainAt {
				t.Fatalf("the reason %q is not said first:\n%s", tc.reason, out)
			}
			line := out[strings.LastIndex(out[:logAt], "\n")+1:]
			line, _, _ = strings.Cut(line, "\n")
			if !strings.Contains(line, `"level":"error"`) || !strings.Contains(line, `"site":"http://localhost:1"`) {
				t.Errorf("the log line does not name the site at error level: %s", line)
			}
		})
	}
}
