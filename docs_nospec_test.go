package sessionauth

import (
	"os"
	"regexp"
	"testing"
)

// specCitation is a sentence citing the project's internal contract
// ("SPEC section 16", "SPEC 11"), which is not in the repository: a
// reader of the docs cannot follow it (issue 29: internal notes leaked).
var specCitation = regexp.MustCompile(`\bSPEC\b`)

// The pages a user reads cite no internal document.
func TestDocsCiteNoInternalSpec(t *testing.T) {
	for _, page := range markdownDocs(t) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, loc := range specCitation.FindAllIndex(b, -1) {
			from, to := max(loc[0]-40, 0), min(loc[1]+40, len(b))
			t.Errorf("%s cites the internal SPEC: %q", page, b[from:to])
		}
	}
}
