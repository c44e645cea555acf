package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The README's access log filter, run as written (its log block told to
// write to a file): a provider's code and state and a "Not you?" link's
// token reach no log line, the rest of each URI does.
func TestReadmeAccessLogFilter(t *testing.T) {
	site := readmeSite(t, "docs/operations.md", "## Codes and link tokens in the access log")
	logFile := filepath.Join(t.TempDir(), "access.log")
	if !strings.Contains(site, "\tlog {\n") {
		t.Fatalf("README block changed shape:\n%s", site)
	}
	site = strings.Replace(site, "\tlog {\n", "\tlog {\n\t\toutput file "+logFile+"\n", 1)
	g := loadCaddy(t, site, newUpstream(t))
	c := newClient(t, g)
	const code, state, token = "c0de5ecret", "st4te5ecret", "0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef"
	c.do("GET", "/.auth/callback/corp?code="+code+"&state="+state+"&lang=en")
	c.do("GET", "/.auth/revoke?token="+token+"&from=mail")
	var text string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(logFile)
		// Caddy writes the access log line after the answer: wait for both.
		if text = string(b); strings.Contains(text, "from=mail") && strings.Contains(text, "lang=en") {
			break
		}
	}
	if !strings.Contains(text, `"uri":"/.auth/callback/corp?lang=en"`) || !strings.Contains(text, `"uri":"/.auth/revoke?from=mail"`) {
		t.Fatalf("the access log has not the two URIs without their secrets:\n%s", text)
	}
	for _, secret := range []string{code, state, token, "code=", "state=", "token="} {
		if strings.Contains(text, secret) {
			t.Errorf("the access log holds %q:\n%s", secret, text)
		}
	}
}
