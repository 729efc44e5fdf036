// Package e2e holds Paddock's browser journeys: each test starts the real
// `portal dev` binary on a private database and drives Debian's headless
// Chromium through it with chromedp, as a developer would click through the
// portal. The package has only tests.
//
// Run them with `make test-e2e` (or `go test ./internal/e2e/`); `go test
// -short` skips them. They need PostgreSQL on 127.0.0.1:5432 (see
// internal/testdb) and Chromium at /usr/bin/chromium (`apt-get install -y
// chromium`). On a failure, every screenshot the test took is written to
// test-artifacts/e2e/<TestName>/ at the repository root.
package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var (
	// repoRoot is the module root, where test-artifacts/ goes.
	repoRoot string
	// portalBin is the portal binary TestMain built.
	portalBin string
	// axeSource is axe-core, injected into each page for the accessibility check.
	axeSource string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// The tests skip themselves; there is nothing to build.
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	axe, err := os.ReadFile(filepath.Join("testdata", "axe.min.js"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: read the vendored axe-core:", err)
		return 1
	}
	axeSource = string(axe)

	tmp, err := os.MkdirTemp("", "paddock-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	portalBin = filepath.Join(tmp, "portal")
	build := exec.Command("go", "build", "-o", portalBin, "./cmd/portal")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/portal: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// moduleRoot finds the directory of go.mod: `go env GOMOD`, or two levels up
// from this package when the go command cannot say.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if gomod := strings.TrimSpace(string(out)); err == nil && gomod != "" && gomod != os.DevNull {
		return filepath.Dir(gomod), nil
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !bytes.Contains(b, []byte("module paddock")) {
		return "", fmt.Errorf("cannot find the module root (go env GOMOD failed and %s has no go.mod of module paddock)", root)
	}
	return root, nil
}
