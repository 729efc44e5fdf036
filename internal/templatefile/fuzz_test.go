package templatefile_test

import (
	"strings"
	"testing"

	"paddock/internal/templatefile"
)

// A hand-edited template file must never make the parser panic: it parses to
// a spec that validates, or fails with an error that names the file.
func FuzzParseYAML(f *testing.F) {
	f.Add([]byte("name: x\ndisplayName: X\nosFamily: ubuntu\nsshUser: u\nimage:\n  containerDisk: quay.io/a/b:1\nsizes:\n- name: s\n  cpu: 1\n  memoryMiB: 512\nmaxLeaseDays: 3\n"))
	f.Add([]byte("name: [\n"))
	f.Add([]byte("unknown: 1\n"))
	f.Add([]byte("sizes: {a: b}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := templatefile.ParseYAML("t.yaml", data)
		if err == nil {
			if verr := spec.Validate(); verr != nil {
				t.Fatalf("parsed a spec that does not validate: %v", verr)
			}
		} else if !strings.HasPrefix(err.Error(), "t.yaml") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
