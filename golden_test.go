package sessionauth

import (
	"os"
	"testing"
)

// matchGolden compares got with the golden file, or rewrites the file
// when the tests run with -update after a deliberate change.
func matchGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("differs from %s (run with -update after a deliberate change):\n%s", golden, got)
	}
}
