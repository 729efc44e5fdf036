package web_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
	"paddock/internal/web"
)

var testRoleMap = map[string]store.Role{
	"paddock-devs": store.RoleDeveloper, "paddock-managers": store.RoleManager, "paddock-platform": store.RolePlatform,
}

// setupOIDC starts Paddock with single sign-on against a fresh test
// provider, with alice (a developer in team payments) registered there.
func setupOIDC(t *testing.T) (*env, *testOP) {
	t.Helper()
	var o *testOP
	e := setupWith(t, func(e *env) web.Config {
		o = newTestOP(t, e.url+"/auth/oidc/callback")
		return web.Config{OIDC: &web.OIDCConfig{
			Issuer: o.issuer, ClientID: opClientID, ClientSecret: opClientSecret, RedirectURL: e.url + "/auth/oidc/callback",
			Mapping: web.ClaimMapping{Roles: testRoleMap, TeamPrefix: "team-"},
		}}
	})
	o.addUser("sub-alice", "alice", "Alice", "paddock-devs", "team-payments", "unrelated")
	o.signInAs("alice")
	return e, o
}

func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ssoResult is how a single sign-on ended at Paddock's callback.
type ssoResult struct {
	status   int
	location string
	body     string
	// authURL is where Paddock sent the browser; callback is where the
	// provider sent it back.
	authURL, callback string
}

// sso follows the sign-in from Paddock to the provider and back, and
// returns Paddock's answer to the callback.
func (e *env) sso(c *http.Client, next string) ssoResult {
	e.t.Helper()
	var res ssoResult
	u := e.url + "/auth/oidc/login?next=" + url.QueryEscape(next)
	for range 10 {
		resp, err := c.Get(u)
		if err != nil {
			e.t.Fatal(err)
		}
		b := body(e.t, resp)
		atCallback := strings.HasPrefix(u, e.url+"/auth/oidc/callback")
		loc := resp.Header.Get("Location")
		if !atCallback && loc != "" {
			next, err := resp.Request.URL.Parse(loc)
			if err != nil {
				e.t.Fatal(err)
			}
			if res.authURL == "" {
				res.authURL = next.String()
			}
			u = next.String()
			if strings.HasPrefix(u, e.url+"/auth/oidc/callback") {
				res.callback = u
			}
			continue
		}
		res.status, res.location, res.body = resp.StatusCode, loc, b
		return res
	}
	e.t.Fatal("sign-in did not come back to Paddock")
	return res
}

// whoami returns the login and role the profile page shows, or "" when
// the client is not signed in.
func (e *env) whoami(c *http.Client) (string, string) {
	e.t.Helper()
	resp, err := c.Get(e.url + "/profile")
	if err != nil {
		e.t.Fatal(err)
	}
	b := body(e.t, resp)
	if resp.StatusCode != http.StatusOK {
		return "", ""
	}
	return between(b, `data-testid="profile-login">`, "<"), between(b, `data-testid="profile-role">`, "<")
}

func between(s, start, end string) string {
	_, after, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, end)
	return v
}

func (e *env) auditCount(action string) int {
	e.t.Helper()
	es, err := e.st.AuditLog(context.Background(), store.AuditFilter{Action: action})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(es)
}

func TestOIDCSignInWithPKCEMapsGroupsAndRefusesReplay(t *testing.T) {
	e, o := setupOIDC(t)
	c := newBrowser()
	res := e.sso(c, "/requests?x=1")
	if res.status != http.StatusSeeOther || res.location != "/requests?x=1" {
		t.Fatalf("callback: %d %s %s", res.status, res.location, between(res.body, `data-testid="error">`, "<"))
	}
	auth, _ := url.Parse(res.authURL)
	q := auth.Query()
	if !strings.HasPrefix(res.authURL, o.issuer) || q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" ||
		q.Get("state") == "" || q.Get("nonce") == "" || q.Get("client_id") != opClientID || q.Get("response_type") != "code" {
		t.Errorf("authorization request lacks PKCE, state or nonce: %s", res.authURL)
	}
	if login, role := e.whoami(c); login != "alice" || role != "developer, team payments" {
		t.Errorf("signed in as %q (%q)", login, role)
	}
	if n := e.auditCount(store.AuditSignIn); n != 1 {
		t.Errorf("%d sign-ins audited", n)
	}

	// The callback replayed, in the same browser or another, signs nobody in.
	for name, b := range map[string]*http.Client{"same browser": c, "other browser": newBrowser()} {
		resp, err := b.Get(res.callback)
		if err != nil {
			t.Fatal(err)
		}
		bd := body(t, resp)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(bd, "Start again") {
			t.Errorf("%s: replayed callback: %d", name, resp.StatusCode)
		}
	}
	if n := e.auditCount(store.AuditSignIn); n != 1 {
		t.Errorf("replay signed in again: %d sign-ins", n)
	}

	// The provider moves alice to the platform team: the next sign-in
	// changes her role, audited.
	o.set(func(o *testOP) { o.groups["sub-alice"] = []string{"paddock-platform", "paddock-devs"} })
	if res := e.sso(c, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d", res.status)
	}
	if _, role := e.whoami(c); role != "platform" {
		t.Errorf("role after group change: %q", role)
	}
	es, _ := e.st.AuditLog(context.Background(), store.AuditFilter{Action: store.AuditRoleChange})
	if len(es) != 1 || es[0].Details["toRole"] != "platform" || es[0].Actor != "alice" {
		t.Errorf("role change audit: %+v", es)
	}
}

func TestOIDCSessionIDIsRenewedAtSignIn(t *testing.T) {
	e, _ := setupOIDC(t)
	c := newBrowser()
	// An attacker's session id planted before sign-in must not become signed in.
	resp, err := c.Get(e.url + "/auth/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	before := sessionCookie(t, c, e.url)
	if before == "" {
		t.Fatal("no session for the sign-in in progress")
	}
	if res := e.sso(c, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", res.status)
	}
	after := sessionCookie(t, c, e.url)
	if after == "" || after == before {
		t.Error("session id not renewed at sign-in")
	}
	planted := newBrowser()
	u, _ := url.Parse(e.url)
	planted.Jar.SetCookies(u, []*http.Cookie{{Name: "paddock_session", Value: before}})
	if login, _ := e.whoami(planted); login != "" {
		t.Errorf("the pre-sign-in session id is signed in as %s", login)
	}
}

func sessionCookie(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "paddock_session" {
			return ck.Value
		}
	}
	return ""
}

func TestOIDCRefusesBadAnswers(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(o *testOP)
		status int
		says   string
		// logged is why, in the log for the platform team.
		logged string
	}{
		{"wrong audience", func(o *testOP) { o.audience = []string{"another-app"} }, http.StatusUnauthorized, "could not be verified",
			`expected audience \"paddock\"`},
		{"expired ID token", func(o *testOP) { o.idTokenLifetime = -time.Minute }, http.StatusUnauthorized, "could not be verified",
			"token is expired"},
		{"wrong nonce", func(o *testOP) { o.nonce = "forged-nonce" }, http.StatusBadRequest, "Start again", "nonce does not match"},
		{"no group grants a role", func(o *testOP) { o.groups["sub-alice"] = []string{"team-payments", "everyone"} }, http.StatusForbidden,
			"none of your groups gives access to Paddock. Ask your manager or the platform team to add you to one of these groups: paddock-devs, paddock-managers or paddock-platform",
			""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, o := setupOIDC(t)
			o.set(tc.tamper)
			c := newBrowser()
			res := e.sso(c, "/")
			if res.status != tc.status || !strings.Contains(res.body, tc.says) {
				t.Errorf("callback: %d, want %d saying %q; page says %q", res.status, tc.status, tc.says,
					between(res.body, `data-testid="error">`, "</div>"))
			}
			if login, _ := e.whoami(c); login != "" {
				t.Errorf("signed in as %s", login)
			}
			if n := e.auditCount(store.AuditSignIn); n != 0 {
				t.Errorf("%d sign-ins audited", n)
			}
			if n := e.count(`SELECT count(*) FROM users WHERE login = 'alice'`); n != 0 {
				t.Error("a user was created")
			}
			if strings.Contains(e.logs.String(), opClientSecret) {
				t.Error("the client secret is in the log")
			}
			if !strings.Contains(e.logs.String(), tc.logged) {
				t.Errorf("the log does not say %q:\n%s", tc.logged, e.logs)
			}
		})
	}
	t.Run("refusal is audited", func(t *testing.T) {
		e, o := setupOIDC(t)
		o.set(func(o *testOP) { o.groups["sub-alice"] = nil })
		e.sso(newBrowser(), "/")
		es, _ := e.st.AuditLog(context.Background(), store.AuditFilter{Action: store.AuditSignInRefused})
		if len(es) != 1 || es[0].Actor != "alice" || es[0].ActorID != nil {
			t.Errorf("refusal audit: %+v", es)
		}
	})
}

func TestOIDCGroupsFromUserinfo(t *testing.T) {
	e, o := setupOIDC(t)
	o.set(func(o *testOP) { o.groupsInIDToken = false })
	c := newBrowser()
	if res := e.sso(c, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", res.status, between(res.body, `data-testid="error">`, "<"))
	}
	if login, role := e.whoami(c); login != "alice" || role != "developer, team payments" {
		t.Errorf("signed in as %q (%q)", login, role)
	}
}

func TestOIDCSecretNeverLogged(t *testing.T) {
	e, o := setupOIDC(t)
	// A complete sign-in and a failed one both leave the secret out of the log.
	if res := e.sso(newBrowser(), "/"); res.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", res.status)
	}
	o.set(func(o *testOP) { o.idTokenLifetime = -time.Hour })
	e.sso(newBrowser(), "/")
	logs := e.logs.String()
	if !strings.Contains(logs, "ID token not valid") {
		t.Errorf("the refusal is not logged:\n%s", logs)
	}
	if strings.Contains(logs, opClientSecret) {
		t.Error("the client secret is in the log")
	}
}

func TestOIDCProviderDown(t *testing.T) {
	// With the provider gone (and not yet discovered), sign-in says so.
	e2 := setupWith(t, func(e *env) web.Config {
		return web.Config{OIDC: &web.OIDCConfig{Issuer: "http://127.0.0.1:1", ClientID: "x", ClientSecret: opClientSecret,
			RedirectURL: e.url + "/auth/oidc/callback", Mapping: web.ClaimMapping{Roles: testRoleMap}}}
	})
	resp, err := newBrowser().Get(e2.url + "/auth/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b, "cannot reach the identity provider") {
		t.Errorf("provider down: %d", resp.StatusCode)
	}
	if strings.Contains(e2.logs.String(), opClientSecret) {
		t.Error("the client secret is in the log")
	}
}
