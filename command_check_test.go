package sessionauth

import (
	"os"
	"strings"
	"testing"
)

// The example of `caddy sessions check` in docs/operations.md is what the
// command prints for the same answer of the admin API.
func TestDocsShowTheCheckCommandsOutput(t *testing.T) {
	out := runSessionsCommand("check", "--address", fakeAdmin(t))
	docs, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := "$ caddy sessions check\n" + out + "```"; !strings.Contains(string(docs), want) {
		t.Fatalf("docs/operations.md does not show the command's output:\n%s", want)
	}
}
