package integration

import (
	"os"
	"strings"
	"testing"
)

// docSection is the text under heading (a whole line such as "### Email
// notices") in file, a path from the repository's root (README.md,
// docs/configuration.md), up to the next heading of any level.
func docSection(t *testing.T, file, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../" + file)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no %q", file, heading)
	}
	// A heading is a line starting with #, outside code blocks.
	inCode := false
	lines := strings.SplitAfter(section, "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if !inCode && strings.HasPrefix(line, "#") {
			return strings.Join(lines[:i], "")
		}
	}
	return section
}

// docBlocks is every ```lang code block in the section under heading.
func docBlocks(t *testing.T, file, heading, lang string) []string {
	t.Helper()
	section := "\n" + docSection(t, file, heading)
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "\n```"+lang+"\n")
		if !ok {
			return blocks
		}
		block, after, ok := strings.Cut(rest, "\n```\n")
		if !ok {
			t.Fatalf("%s: an unclosed block under %q", file, heading)
		}
		blocks = append(blocks, block+"\n")
		section = after
	}
}

// docBlock is the first ```lang code block under heading.
func docBlock(t *testing.T, file, heading, lang string) string {
	t.Helper()
	blocks := docBlocks(t, file, heading, lang)
	if len(blocks) == 0 {
		t.Fatalf("%s has no %s block under %q", file, lang, heading)
	}
	return blocks[0]
}
