// Package stamp names the commit a benchmark ran on, for the sections the
// benchmark programs write into BENCHMARKS.md.
package stamp

import (
	"os/exec"
	"strings"
)

// Commit returns the checked-out commit, with "+ uncommitted changes" when
// the work tree differs from it, or "unknown commit" outside a git checkout.
func Commit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	c := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " + uncommitted changes"
	}
	return c
}
