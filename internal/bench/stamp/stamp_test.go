package stamp

import (
	"regexp"
	"testing"
)

func TestCommitNamesTheCheckedOutCommit(t *testing.T) {
	got := Commit()
	if !regexp.MustCompile(`^commit [0-9a-f]{40}( \+ uncommitted changes)?$`).MatchString(got) {
		t.Fatalf("Commit() = %q, want the commit of this checkout", got)
	}
}
