package store

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// The parsers of user input must never panic, must answer in bounded time
// and memory, and must give the short, clear messages users see.

func FuzzCheckVMName(f *testing.F) {
	for _, s := range []string{"web-1", "", "-a", "a-", "Web", "a.b", "1abc", strings.Repeat("a", 51), "ünïcode", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		msg := CheckVMName(name)
		if msg == "" {
			if len(name) > MaxVMNameLen || !dnsLabel.MatchString(name) || name[0] < 'a' || name[0] > 'z' {
				t.Fatalf("accepted %q", name)
			}
		}
		if len(msg) > 200 {
			t.Fatalf("message too long: %q", msg)
		}
	})
}

func FuzzCheckSSHPublicKey(f *testing.F) {
	for _, s := range []string{
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo dev@example",
		"ssh-rsa AAAA", "", "-----BEGIN OPENSSH PRIVATE KEY-----", "ssh-ed25519 AAAA\nssh-ed25519 BBBB",
		"command=\"x\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		msg := CheckSSHPublicKey(key)
		if msg == "" {
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(key))); err != nil {
				t.Fatalf("accepted unparsable key %q", key)
			}
			if len(key) > MaxSSHKeyLen+len(key)-len(strings.TrimSpace(key)) {
				t.Fatalf("accepted an oversized key")
			}
		}
		if len(msg) > 200 || !utf8.ValidString(msg) {
			t.Fatalf("bad message %q", msg)
		}
	})
}

func FuzzCheckCloudConfig(f *testing.F) {
	for _, s := range []string{"#cloud-config\npackages: [htop]\n", "", "#!/bin/sh\necho hi", "#cloud-config\n: :\n", "#cloud-config\na: &x [*x]\n",
		"#cloud-config\n" + strings.Repeat("- ", 1000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		msg := CheckCloudConfig(data)
		if msg == "" && data != "" && !strings.HasPrefix(data, "#cloud-config") {
			t.Fatalf("accepted %q", data)
		}
		if len(msg) > 300 {
			t.Fatalf("message too long: %d", len(msg))
		}
	})
}
