package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

// templatesCLI runs `portal templates ARGS` in-process against dbURL.
func templatesCLI(t *testing.T, dbURL string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"DATABASE_URL": dbURL}
	err = run(context.Background(), append([]string{"templates"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestTemplatesExportApplyRoundTrip: export → apply publishes nothing; an
// edit publishes exactly one version; a bad file anywhere applies nothing and
// names file, line and field.
func TestTemplatesExportApplyRoundTrip(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewURL(t)
	ctx := context.Background()
	st := testStore(t, dbURL)
	if err := seed(ctx, st, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	versions := func() int {
		var n int
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM template_versions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	dir := t.TempDir()
	out, _, err := templatesCLI(t, dbURL, "export", "--dir", dir)
	if err != nil || !strings.Contains(out, "wrote "+filepath.Join(dir, "fedora.yaml")+" (version 1)") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	before := versions()
	out, _, err = templatesCLI(t, dbURL, "apply", "-f", dir)
	if err != nil || strings.Count(out, "unchanged (version 1)") < 5 || !strings.Contains(out, "0 of ") {
		t.Fatalf("apply of an export: %v\n%s", err, out)
	}
	if versions() != before {
		t.Fatal("applying an export published versions")
	}

	// Edit one file; a dry run says what would happen and does nothing.
	fedora := filepath.Join(dir, "fedora.yaml")
	b, _ := os.ReadFile(fedora)
	edited := strings.Replace(string(b), "maxLeaseDays: 14", "maxLeaseDays: 21", 1)
	if edited == string(b) {
		t.Fatalf("fedora.yaml has no maxLeaseDays: 14:\n%s", b)
	}
	if err := os.WriteFile(fedora, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = templatesCLI(t, dbURL, "apply", "-f", dir, "--dry-run", "--diff")
	if err != nil || !strings.Contains(out, "fedora: would publish version 2 (was 1); changed: maxLeaseDays") ||
		!strings.Contains(out, "-maxLeaseDays: 14") || !strings.Contains(out, "+maxLeaseDays: 21") || !strings.Contains(out, "nothing was applied") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if versions() != before {
		t.Fatal("a dry run published")
	}

	// A bad second file: nothing is applied, and the problem is located.
	bad := filepath.Join(dir, "zz-bad.yaml")
	if err := os.WriteFile(bad, []byte("name: zz-bad\ndisplayName: Bad\nosFamily: linux\nimage:\n  http: ftp://x\nsizes:\n  - name: s\n    cpus: 2\nsshUser: u\nmaxLeaseDays: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := templatesCLI(t, dbURL, "apply", "-f", dir)
	if err == nil || !strings.Contains(err.Error(), "nothing was applied") ||
		!strings.Contains(errOut, bad+":8: sizes[0].cpus: unknown field (did you mean cpu?)") {
		t.Fatalf("bad file: %v\n%s", err, errOut)
	}
	os.Remove(bad)
	if versions() != before {
		t.Fatal("a failed apply published")
	}

	out, _, err = templatesCLI(t, dbURL, "apply", "-f", dir, "-m", "longer leases", "--user", "platform")
	if err != nil || !strings.Contains(out, "fedora: published version 2 (was 1); changed: maxLeaseDays") || !strings.Contains(out, "1 of ") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if versions() != before+1 {
		t.Fatalf("apply published %d versions, want 1", versions()-before)
	}
	tpl, _ := st.TemplateByName(ctx, "fedora")
	tv, _ := st.TemplateVersion(ctx, tpl.ID, 2)
	if tv.Note != "longer leases" || tv.CreatedBy != "platform" {
		t.Errorf("version 2: note %q by %q", tv.Note, tv.CreatedBy)
	}
	if _, _, err := templatesCLI(t, dbURL, "apply", "-f", dir, "--user", "developer"); err == nil {
		t.Error("a developer was recorded as publisher")
	}

	// Export again: the files say version 2 and apply cleanly.
	if out, _, err = templatesCLI(t, dbURL, "export", "--dir", dir); err != nil || !strings.Contains(out, "fedora.yaml (version 2)") {
		t.Fatalf("second export: %v\n%s", err, out)
	}
	out, _, err = templatesCLI(t, dbURL, "export", "--dir", "-")
	if err != nil || !strings.Contains(out, "\n---\n") || !strings.Contains(out, "# Paddock template fedora, version 2.") {
		t.Errorf("export to stdout: %v\n%s", err, out)
	}
	if _, _, err := templatesCLI(t, dbURL, "apply"); err == nil {
		t.Error("apply without -f")
	}
}

func testStore(t *testing.T, dbURL string) *store.Store {
	t.Helper()
	pool, err := openDB(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return store.New(pool)
}
