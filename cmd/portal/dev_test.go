package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestDevListensOnLoopbackUnlessAllowed: `portal dev` signs anyone in as
// platform, so by default it listens on 127.0.0.1 and refuses addresses
// other computers reach unless --allow-remote is given.
func TestDevListensOnLoopbackUnlessAllowed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		addr   string
		refuse bool
	}{
		{args: nil, addr: "127.0.0.1:8080"},
		{args: []string{"--addr", "localhost:9000"}, addr: "localhost:9000"},
		{args: []string{"--addr", "[::1]:0"}, addr: "[::1]:0"},
		{env: map[string]string{"PADDOCK_ADDR": "127.0.0.2:8080"}, addr: "127.0.0.2:8080"},
		{args: []string{"--addr", ":8080"}, refuse: true},
		{args: []string{"--addr", "0.0.0.0:8080"}, refuse: true},
		{args: []string{"--addr", "[::]:8080"}, refuse: true},
		{args: []string{"--addr", "192.0.2.10:8080"}, refuse: true},
		{args: []string{"--addr", "paddock.example:8080"}, refuse: true},
		{env: map[string]string{"PADDOCK_ADDR": ":8080"}, refuse: true},
		{args: []string{"--addr", ":8080", "--allow-remote"}, addr: ":8080"},
	} {
		c, _, err := parseDev(tc.args, envMap(tc.env), io.Discard)
		switch {
		case tc.refuse && (err == nil || !strings.Contains(err.Error(), "--allow-remote")):
			t.Errorf("%v %v: not refused (%v)", tc.args, tc.env, err)
		case !tc.refuse && err != nil:
			t.Errorf("%v %v: %v", tc.args, tc.env, err)
		case !tc.refuse && c.Addr != tc.addr:
			t.Errorf("%v %v: listens on %q, want %q", tc.args, tc.env, c.Addr, tc.addr)
		}
	}
}

// TestDevWarnsWhenRemoteIsAllowed: with --allow-remote the warning is on
// the terminal and in the log before anything starts.
func TestDevWarnsWhenRemoteIsAllowed(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	// An unreachable database ends the command right after the warning.
	env := envMap(map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x?connect_timeout=1"})
	err := run(context.Background(), []string{"dev", "--addr", ":0", "--allow-remote"}, env, &stdout, &stderr)
	if err == nil {
		t.Fatal("dev started against an unreachable database")
	}
	for what, out := range map[string]string{"stdout": stdout.String(), "log": stderr.String()} {
		if !strings.Contains(out, "anyone who can reach it can sign in as platform") {
			t.Errorf("%s has no warning:\n%s", what, out)
		}
	}
	// Without the flag nothing starts.
	stdout.Reset()
	if err := run(context.Background(), []string{"dev", "--addr", ":0"}, env, &stdout, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--allow-remote") {
		t.Errorf("dev on every interface: %v", err)
	}
}
