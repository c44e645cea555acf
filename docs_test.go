package sessionauth

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// The README is a start, not a manual (issue 29): a new user reads it in
// ten minutes. The reference lives in docs/.
func TestREADMEStaysShort(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > 250 {
		t.Errorf("README.md has %d lines; keep it to 250 and move the reference into docs/", n)
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// markdownDocs are the pages whose links are checked: the README,
// SECURITY.md, xcaddy.md and every page under docs/.
func markdownDocs(t *testing.T) []string {
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md", "SECURITY.md", "xcaddy.md"}, pages...)
}

// anchors are the heading ids GitHub gives a page's headings.
func anchors(text string) map[string]bool {
	ids := map[string]bool{}
	seen := map[string]int{}
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var id strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-':
				id.WriteRune(r)
			case r == ' ':
				id.WriteRune('-')
			}
		}
		s := id.String()
		if n := seen[s]; n > 0 {
			ids[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			ids[s] = true
		}
		seen[s]++
	}
	return ids
}

// Every relative link of the README, SECURITY.md and docs/ names a file
// that exists and, with a #fragment, a heading of it; every page under
// docs/ is listed in docs/README.md, the table of contents.
func TestDocsLinksResolve(t *testing.T) {
	for _, page := range markdownDocs(t) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(link, "#")
			target := page
			if file != "" {
				target = filepath.Join(filepath.Dir(page), file)
			}
			if fi, err := os.Stat(target); err == nil && fi.IsDir() && frag == "" {
				continue // a folder: it exists
			}
			text, err := os.ReadFile(target)
			if err != nil {
				t.Errorf("%s links to %s: %v", page, link, err)
				continue
			}
			if frag != "" && !anchors(string(text))[frag] {
				t.Errorf("%s links to %s: %s has no heading #%s", page, link, target, frag)
			}
		}
	}
	toc, err := os.ReadFile("docs/README.md")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob("docs/*.md")
	for _, p := range pages {
		if name := filepath.Base(p); name != "README.md" && !strings.Contains(string(toc), "]("+name+")") {
			t.Errorf("docs/README.md does not list %s", name)
		}
	}
	readme, _ := os.ReadFile("README.md")
	if !strings.Contains(string(readme), "](docs/README.md)") {
		t.Error("README.md does not link the table of contents, docs/README.md")
	}
}

// The glossary defines the words the pages use before a reader meets them.
func TestDocsGlossaryDefinesTheJargon(t *testing.T) {
	toc, err := os.ReadFile("docs/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, word := range []string{"Hand-off", "Mint", "Touch", "Step-up", "Grace"} {
		if !strings.Contains(string(toc), "- **"+word+"**: ") {
			t.Errorf("the glossary does not define %s", word)
		}
	}
}

// The README's smallest configs adapt as written.
func TestREADMESmallestConfigsAdapt(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## The smallest configs\n")
	if !ok {
		t.Fatal(`README.md has no "## The smallest configs"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	blocks := 0
	for {
		_, rest, ok := strings.Cut(section, "```caddyfile\n")
		if !ok {
			break
		}
		block, after, _ := strings.Cut(rest, "```\n")
		blocks++
		if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(block), map[string]any{"filename": "README.md"}); err != nil {
			t.Errorf("README block %d: %v\n%s", blocks, err, block)
		}
		section = after
	}
	if blocks != 3 {
		t.Errorf("%d caddyfile blocks under the smallest configs, want 3", blocks)
	}
}
