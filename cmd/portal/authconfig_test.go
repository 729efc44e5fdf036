package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

const testSecret = "oidc-client-secret-that-must-not-leak"

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSecretsFromEnvOrFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{"env", map[string]string{"S": testSecret}, testSecret, ""},
		{"file, trailing newline dropped", map[string]string{"S_FILE": file}, testSecret, ""},
		{"both", map[string]string{"S": "a", "S_FILE": file}, "", "not both"},
		{"missing file", map[string]string{"S_FILE": filepath.Join(dir, "nope")}, "", "read S_FILE"},
		{"empty file", map[string]string{"S_FILE": empty}, "", "is empty"},
		{"unset", map[string]string{}, "", ""},
	}
	for _, c := range cases {
		got, err := secretEnv(envMap(c.env), "S")
		if got != c.want || (err == nil) != (c.wantErr == "") || err != nil && !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: %q, %v", c.name, got, err)
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Errorf("%s: the error shows the secret", c.name)
		}
	}
}

func TestAuthConfig(t *testing.T) {
	t.Parallel()
	full := map[string]string{
		"PADDOCK_OIDC_ISSUER": "https://idp.example", "PADDOCK_OIDC_CLIENT_ID": "paddock",
		"PADDOCK_OIDC_CLIENT_SECRET": testSecret, "PADDOCK_OIDC_REDIRECT_URL": "https://paddock.example/auth/oidc/callback",
		"PADDOCK_ROLE_MAP":    "paddock-devs=developer, paddock-platform=platform,paddock-managers=manager",
		"PADDOCK_TEAM_PREFIX": "team-", "PADDOCK_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7",
		"PADDOCK_SESSION_LIFETIME": "8h", "PADDOCK_SESSION_IDLE_TIMEOUT": "30m",
	}
	a, err := readAuthConfig(envMap(full))
	if err != nil {
		t.Fatal(err)
	}
	if a.OIDC == nil || a.OIDC.ClientSecret != testSecret || a.OIDC.Mapping.Roles["paddock-platform"] != store.RolePlatform ||
		a.OIDC.Mapping.TeamPrefix != "team-" || a.Proxy != nil || len(a.TrustedProxies) != 2 ||
		a.TrustedProxies[1].String() != "192.168.1.7/32" || a.SessionLifetime != 8*time.Hour || a.SessionIdleTimeout != 30*time.Minute {
		t.Errorf("config: %+v", a)
	}
	// Printing the config, as a careless log line might, shows no secret.
	if s := a.OIDC.String(); strings.Contains(s, testSecret) {
		t.Error("OIDCConfig.String shows the secret")
	}

	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			m[k] = v
		}
		m[k] = v
		return m
	}
	for name, c := range map[string]struct {
		env  map[string]string
		says string
	}{
		"half configured":      {with("PADDOCK_OIDC_CLIENT_ID", ""), "PADDOCK_OIDC_CLIENT_ID"},
		"no secret":            {with("PADDOCK_OIDC_CLIENT_SECRET", ""), "PADDOCK_OIDC_CLIENT_SECRET"},
		"no role map":          {with("PADDOCK_ROLE_MAP", ""), "PADDOCK_ROLE_MAP"},
		"unknown role":         {with("PADDOCK_ROLE_MAP", "admins=root"), "developer, manager or platform"},
		"bad proxy address":    {with("PADDOCK_TRUSTED_PROXIES", "proxy.example"), "PADDOCK_TRUSTED_PROXIES"},
		"idle beyond lifetime": {with("PADDOCK_SESSION_IDLE_TIMEOUT", "9h"), "must not exceed"},
		"proxy without trust":  {map[string]string{"PADDOCK_PROXY_AUTH": "true", "PADDOCK_ROLE_MAP": "a=developer"}, "PADDOCK_TRUSTED_PROXIES"},
	} {
		_, err := readAuthConfig(envMap(c.env))
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want an error naming %s", name, err, c.says)
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Errorf("%s: the error shows the secret", name)
		}
	}
	p, err := readAuthConfig(envMap(map[string]string{"PADDOCK_PROXY_AUTH": "true", "PADDOCK_ROLE_MAP": "a=developer",
		"PADDOCK_TRUSTED_PROXIES": "127.0.0.1", "PADDOCK_PROXY_GROUPS_HEADER": "X-Groups"}))
	if err != nil || p.Proxy == nil || p.Proxy.GroupsHeader != "X-Groups" || p.Proxy.UserHeader != "X-Forwarded-User" {
		t.Errorf("proxy config: %+v %v", p.Proxy, err)
	}
}

// TestRunningPortalKeepsSecretsOutOfLogsAndTimesOutSlowClients runs the real
// binary with single sign-on configured through the environment, makes it
// log (a sign-in while the provider is unreachable), and checks the log; it
// also holds a connection open without finishing the request headers.
func TestRunningPortalKeepsSecretsOutOfLogsAndTimesOutSlowClients(t *testing.T) {
	t.Parallel()
	p := startPortal(t, testdb.NewURL(t),
		"PADDOCK_OIDC_ISSUER=http://127.0.0.1:1", "PADDOCK_OIDC_CLIENT_ID=paddock",
		"PADDOCK_OIDC_CLIENT_SECRET="+testSecret, "PADDOCK_OIDC_REDIRECT_URL=http://localhost/auth/oidc/callback",
		"PADDOCK_ROLE_MAP=paddock-devs=developer")
	for _, path := range []string{"/signin", "/auth/oidc/login", "/auth/oidc/callback?code=x&state=y"} {
		resp, err := http.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if path == "/auth/oidc/login" && resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("sign-in with the provider away: %d", resp.StatusCode)
		}
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.Copy(io.Discard, conn)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("a client that never finishes its headers held the connection for %s", d)
	}

	logs := p.log()
	if !strings.Contains(logs, "single sign-on unavailable") {
		t.Errorf("the failed sign-in was not logged:\n%s", logs)
	}
	if strings.Contains(logs, testSecret) {
		t.Errorf("the client secret is in the log:\n%s", logs)
	}
}
