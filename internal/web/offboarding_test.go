package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/web"
)

// getAs fetches path with the client, adding headers, and returns the status
// and body.
func (e *env) getAs(c *http.Client, path string, h http.Header) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, body(e.t, resp)
}

// auditActions lists, oldest first, the actions audited against the user.
func (e *env) auditActions(login string) []string {
	e.t.Helper()
	es, err := e.st.AuditLog(context.Background(), store.AuditFilter{Target: store.UserTarget(login)})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Target == store.UserTarget(login) {
			out = append(out, es[i].Action)
		}
	}
	return out
}

// apiStatus calls a token-authenticated API route and returns the status,
// checking that a refusal is the API's JSON error.
func (e *env) apiStatus(tok, path string) int {
	e.t.Helper()
	resp, b := e.apiDo(tok, "GET", path, "", nil)
	if resp.StatusCode >= 400 {
		var ae struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(b), &ae); err != nil || ae.Error == "" {
			e.t.Errorf("%s: %d without the API's JSON error: %q", path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

func (e *env) userToken(login string) string {
	e.t.Helper()
	u, err := e.st.UserByLogin(context.Background(), login)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.st.CreateToken(context.Background(), u.ID, "ci", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// TestOIDCGroupsOffboardAtOnce: the groups at each sign-in decide at once,
// for every session and token of the person: a demotion lowers them all, a
// refusal disables the account (tokens 401, sessions signed out, the dev
// sign-in refused), and a later sign-in whose groups grant a role again
// re-enables it, without bringing the old tokens back.
func TestOIDCGroupsOffboardAtOnce(t *testing.T) {
	var o *testOP
	e := setupWith(t, func(e *env) web.Config {
		o = newTestOP(t, e.url+"/auth/oidc/callback")
		return web.Config{DevSignIn: true, OIDC: &web.OIDCConfig{
			Issuer: o.issuer, ClientID: opClientID, ClientSecret: opClientSecret, RedirectURL: e.url + "/auth/oidc/callback",
			Mapping: web.ClaimMapping{Roles: testRoleMap, TeamPrefix: "team-"},
		}}
	})
	o.addUser("sub-alice", "alice", "Alice", "paddock-platform", "team-payments")
	o.signInAs("alice")
	groups := func(gs ...string) { o.set(func(o *testOP) { o.groups["sub-alice"] = gs }) }
	signIn := func(c *http.Client, want int) {
		t.Helper()
		if res := e.sso(c, "/"); res.status != want {
			t.Fatalf("sign-in: %d, want %d: %s", res.status, want, between(res.body, `data-testid="error">`, "</div>"))
		}
	}

	laptop, phone := newBrowser(), newBrowser()
	signIn(laptop, http.StatusSeeOther)
	signIn(phone, http.StatusSeeOther)
	tok := e.userToken("alice")
	if st, _ := e.getAs(laptop, "/platform/templates", nil); st != http.StatusOK {
		t.Fatalf("platform engineer on /platform/templates: %d", st)
	}
	if st := e.apiStatus(tok, "/api/v1/rollouts"); st != http.StatusOK {
		t.Fatalf("platform engineer's token on rollouts: %d", st)
	}

	// Demoted: one sign-in with the new groups lowers every session and token.
	groups("paddock-devs", "team-payments")
	signIn(newBrowser(), http.StatusSeeOther)
	if _, role := e.whoami(laptop); role != "developer, team payments" {
		t.Errorf("the laptop's session after demotion: %q", role)
	}
	if st, _ := e.getAs(phone, "/platform/templates", nil); st != http.StatusForbidden {
		t.Errorf("demoted session on /platform/templates: %d", st)
	}
	if st := e.apiStatus(tok, "/api/v1/rollouts"); st != http.StatusForbidden {
		t.Errorf("demoted token on rollouts: %d", st)
	}
	if st := e.apiStatus(tok, "/api/v1/templates"); st != http.StatusOK {
		t.Errorf("demoted token on templates: %d", st)
	}

	// Refused: no group grants a role any more. She is offboarded.
	groups("team-payments", "everyone")
	signIn(newBrowser(), http.StatusForbidden)
	for name, c := range map[string]*http.Client{"laptop": laptop, "phone": phone} {
		if login, _ := e.whoami(c); login != "" {
			t.Errorf("%s still signed in as %s after the refusal", name, login)
		}
	}
	if st := e.apiStatus(tok, "/api/v1/templates"); st != http.StatusUnauthorized {
		t.Errorf("refused person's token: %d", st)
	}
	resp, err := newBrowser().PostForm(e.url+"/dev/signin", url.Values{"login": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "account is disabled") {
		t.Errorf("dev sign-in as the disabled person: %d", resp.StatusCode)
	}
	if n := e.count(`SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL`); n != 0 {
		t.Errorf("%d tokens left unrevoked", n)
	}
	if n := e.count(`SELECT count(*) FROM user_sessions us JOIN users u ON u.id = us.user_id WHERE u.login = 'alice'`); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	if n := e.count(`SELECT count(*) FROM users WHERE login = 'alice' AND disabled_by = 'identity_provider'`); n != 1 {
		t.Error("the account is not marked disabled by the identity provider")
	}
	if n := e.count(`SELECT count(*) FROM audit_log WHERE action = 'token_revoke' AND details->>'via' = 'user disabled'`); n != 1 {
		t.Errorf("%d token revocations audited", n)
	}

	// Let back in by the groups: re-enabled, but the old token stays revoked.
	groups("paddock-devs")
	signIn(laptop, http.StatusSeeOther)
	if login, role := e.whoami(laptop); login != "alice" || role != "developer" {
		t.Errorf("after re-admission: %q %q", login, role)
	}
	if st := e.apiStatus(tok, "/api/v1/templates"); st != http.StatusUnauthorized {
		t.Errorf("old token after re-admission: %d", st)
	}
	want := []string{"user_create", "sign_in", "sign_in", "role_change", "sign_in", "sign_in_refused", "user_disable",
		"user_enable", "role_change", "sign_in"}
	if got := e.auditActions("alice"); !slices.Equal(got, want) {
		t.Errorf("audit of alice:\n got %v\nwant %v", got, want)
	}
}

// TestAdministratorDisableOutlastsTheIdentityProvider: an account disabled
// by an administrator (portal users disable) is not re-enabled by a sign-in
// whose groups grant a role, only by portal users enable.
func TestAdministratorDisableOutlastsTheIdentityProvider(t *testing.T) {
	e, _ := setupOIDC(t)
	c := newBrowser()
	if res := e.sso(c, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", res.status)
	}
	tok := e.userToken("alice")
	ctx := context.Background()
	off, err := e.st.DisableUser(ctx, store.Actor{Name: "cli"}, "alice", "left the company")
	if err != nil || off.TokensRevoked != 1 || off.SessionsEnded != 1 {
		t.Fatalf("disable: %+v %v", off, err)
	}
	if login, _ := e.whoami(c); login != "" {
		t.Errorf("still signed in as %s", login)
	}
	if st := e.apiStatus(tok, "/api/v1/templates"); st != http.StatusUnauthorized {
		t.Errorf("token of a disabled user: %d", st)
	}
	res := e.sso(c, "/")
	if res.status != http.StatusForbidden || !strings.Contains(res.body, "account is disabled") {
		t.Errorf("sign-in while disabled by an administrator: %d", res.status)
	}
	if login, _ := e.whoami(c); login != "" {
		t.Errorf("signed in as %s while disabled", login)
	}
	if _, err := e.st.EnableUser(ctx, store.Actor{Name: "cli"}, "alice"); err != nil {
		t.Fatal(err)
	}
	if res := e.sso(c, "/"); res.status != http.StatusSeeOther {
		t.Errorf("sign-in after enable: %d", res.status)
	}
	if login, _ := e.whoami(c); login != "alice" {
		t.Errorf("after enable, signed in as %q", login)
	}
	want := []string{"user_create", "sign_in", "user_disable", "sign_in_refused", "user_enable", "sign_in"}
	if got := e.auditActions("alice"); !slices.Equal(got, want) {
		t.Errorf("audit of alice:\n got %v\nwant %v", got, want)
	}
}

// TestProxyGroupsApplyOnTheNextRequest: behind an authenticating proxy the
// groups header is resolved again whenever it changes, so a demotion, a
// promotion or a refusal takes effect on the person's very next request,
// for the session and for their tokens.
func TestProxyGroupsApplyOnTheNextRequest(t *testing.T) {
	e := setupWith(t, func(*env) web.Config {
		p := web.DefaultProxyConfig()
		p.Mapping = web.ClaimMapping{Roles: testRoleMap, TeamPrefix: "team-"}
		return web.Config{Proxy: &p, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	})
	as := func(groups string) http.Header {
		return http.Header{"X-Forwarded-User": {"u-bob"}, "X-Forwarded-Preferred-Username": {"bob"},
			"X-Forwarded-Email": {"bob@example.com"}, "X-Forwarded-Groups": {groups}}
	}
	c := newBrowser()
	platform := as("paddock-platform, team-payments")
	if st, _ := e.getAs(c, "/platform/templates", platform); st != http.StatusOK {
		t.Fatalf("platform engineer: %d", st)
	}
	tok := e.userToken("bob")
	if st := e.apiStatus(tok, "/api/v1/rollouts"); st != http.StatusOK {
		t.Fatalf("platform engineer's token: %d", st)
	}

	demoted := as("paddock-devs, team-payments")
	if st, _ := e.getAs(c, "/platform/templates", demoted); st != http.StatusForbidden {
		t.Errorf("demoted on the next request: %d", st)
	}
	if st, b := e.getAs(c, "/profile", demoted); st != http.StatusOK || between(b, `data-testid="profile-role">`, "<") != "developer, team payments" {
		t.Errorf("profile after demotion: %d %q", st, between(b, `data-testid="profile-role">`, "<"))
	}
	if st := e.apiStatus(tok, "/api/v1/rollouts"); st != http.StatusForbidden {
		t.Errorf("demoted person's token on rollouts: %d", st)
	}

	if st, _ := e.getAs(c, "/platform/templates", platform); st != http.StatusOK {
		t.Errorf("promoted again, on the next request: %d", st)
	}

	cookie := sessionCookie(t, c, e.url)
	refused := as("team-payments, everyone")
	if st, _ := e.getAs(c, "/profile", refused); st != http.StatusForbidden {
		t.Errorf("refused on the next request: %d", st)
	}
	// The session cookie, replayed without an identity from the proxy,
	// signs in nobody now.
	replay := newBrowser()
	u, _ := url.Parse(e.url)
	replay.Jar.SetCookies(u, []*http.Cookie{{Name: "paddock_session", Value: cookie}})
	if st, _ := e.getAs(replay, "/profile", nil); st != http.StatusSeeOther {
		t.Errorf("the refused person's session cookie: %d", st)
	}
	if st := e.apiStatus(tok, "/api/v1/templates"); st != http.StatusUnauthorized {
		t.Errorf("refused person's token: %d", st)
	}

	// The groups grant a role again: re-enabled on the next request.
	if st, b := e.getAs(c, "/profile", demoted); st != http.StatusOK || between(b, `data-testid="profile-login">`, "<") != "bob" {
		t.Errorf("re-admitted: %d", st)
	}
	want := []string{"user_create", "sign_in", "role_change", "sign_in", "role_change", "sign_in", "sign_in_refused",
		"user_disable", "user_enable", "role_change", "sign_in"}
	if got := e.auditActions("bob"); !slices.Equal(got, want) {
		t.Errorf("audit of bob:\n got %v\nwant %v", got, want)
	}
}
