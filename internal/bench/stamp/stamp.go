// Package stamp names the commit a benchmark ran on, for the sections the
// benchmark programs write into BENCHMARKS.md.
package stamp

import (
	"os"
	"os/exec"
	"strings"
)

// Commit returns the checked-out commit, with "+ uncommitted changes" when
// the work tree (BENCHMARKS.md aside) differs from it, or "unknown commit"
// outside a git checkout.
func Commit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	c := "commit " + strings.TrimSpace(string(out))
	// BENCHMARKS.md is what the benchmarks write: a change there is the
	// output of an earlier program of the same `make bench`, not a change
	// to what is measured.
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " + uncommitted changes"
	}
	return c
}

// Splice replaces what lies between the markers begin and end in file with
// section. When file has no such markers, it appends intro (a heading and
// a sentence on what writes the section; may be empty), the markers and
// the section. The rest of the file is kept.
func Splice(file, begin, end, section, intro string) error {
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(b)
	block := begin + "\n" + section + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(end):]
	} else {
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		s += "\n" + intro + block + "\n"
	}
	return os.WriteFile(file, []byte(s), 0o644)
}
