package web_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
	"paddock/internal/web"
)

// checkSecurityHeaders reports what a response lacks of the headers every
// answer must carry.
func checkSecurityHeaders(resp *http.Response) []string {
	var bad []string
	csp := resp.Header.Get("Content-Security-Policy")
	if csp == "" || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
		bad = append(bad, "Content-Security-Policy "+csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		bad = append(bad, "X-Content-Type-Options")
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp == "" || rp == "unsafe-url" {
		bad = append(bad, "Referrer-Policy")
	}
	return bad
}

func TestSecurityHeadersOnEveryRouteAndHSTSOnlyOverTLS(t *testing.T) {
	m := setupMatrix(t)
	for _, rc := range routeMatrix {
		method, _, _ := strings.Cut(rc.route, " ")
		if method != http.MethodGet && method != "*" {
			continue
		}
		for _, who := range []string{"anonymous", "platform"} {
			resp := m.do(who, http.MethodGet, m.fill(rc.path, who), "", nil)
			if bad := checkSecurityHeaders(resp); len(bad) > 0 {
				t.Errorf("%s as %s: missing or weak %v", rc.route, who, bad)
			}
			if resp.Header.Get("Strict-Transport-Security") != "" {
				t.Errorf("%s: HSTS over plain HTTP", rc.route)
			}
		}
	}
	// Over TLS, every answer asks browsers to stay on HTTPS.
	ts := httptest.NewTLSServer(m.web.Handler())
	defer ts.Close()
	for _, p := range []string{"/healthz", "/signin", "/nowhere"} {
		resp, err := ts.Client().Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
			t.Errorf("%s over TLS: HSTS %q", p, hsts)
		}
	}
}

func TestSessionCookieFlags(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true, SecureCookies: true})
	resp, err := newBrowser().PostForm(e.url+"/dev/signin", url.Values{"login": {"developer"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "paddock_session" {
			ck = c
		}
	}
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Value == "" {
		t.Fatalf("session cookie %+v", ck)
	}
	// The database keeps only a digest of the cookie.
	if n := e.count(`SELECT count(*) FROM sessions WHERE token = '` + ck.Value + `'`); n != 0 {
		t.Error("the session cookie is stored in the clear")
	}
	if n := e.count(`SELECT count(*) FROM user_sessions`); n != 1 {
		t.Errorf("%d sessions recorded", n)
	}
}

func TestSessionTimeouts(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		e := setup(t, web.Config{DevSignIn: true, SessionIdleTimeout: 2 * time.Second, SessionLifetime: time.Hour})
		c := e.browser("developer")
		for range 3 {
			time.Sleep(700 * time.Millisecond)
			if login, _ := e.whoami(c); login != "developer" {
				t.Fatal("signed out while active")
			}
		}
		time.Sleep(3 * time.Second)
		if login, _ := e.whoami(c); login != "" {
			t.Error("still signed in after the idle timeout")
		}
	})
	t.Run("absolute", func(t *testing.T) {
		e := setup(t, web.Config{DevSignIn: true, SessionLifetime: 3 * time.Second})
		c := e.browser("developer")
		deadline := time.Now().Add(3 * time.Second)
		for time.Until(deadline) > time.Second {
			if login, _ := e.whoami(c); login != "developer" {
				t.Fatal("signed out early")
			}
			time.Sleep(500 * time.Millisecond)
		}
		time.Sleep(time.Until(deadline) + 500*time.Millisecond)
		if login, _ := e.whoami(c); login != "" {
			t.Error("still signed in after the absolute lifetime, though active")
		}
	})
}

// TestPageViewsDoNotRewriteTheSession: with an idle timeout, a page view
// only pushes the session's expiry forward in the database once it would
// move by at least a hundredth of the timeout; until then the row is not
// written at all. A change to the session's data is written at once.
func TestPageViewsDoNotRewriteTheSession(t *testing.T) {
	// 300 s idle timeout: expiry writes at most once every 3 s, which
	// leaves the five page views below time to spare on a loaded machine.
	e := setup(t, web.Config{DevSignIn: true, SessionIdleTimeout: 300 * time.Second, SessionLifetime: time.Hour})
	ctx := context.Background()
	row := func() (xmin string, expiry time.Time) {
		t.Helper()
		if err := e.st.Pool().QueryRow(ctx, `SELECT xmin::text, expiry FROM sessions`).Scan(&xmin, &expiry); err != nil {
			t.Fatal(err)
		}
		return xmin, expiry
	}
	c := e.browser("developer")
	x0, exp0 := row()
	for range 5 {
		if login, _ := e.whoami(c); login != "developer" {
			t.Fatal("not signed in")
		}
	}
	if x, exp := row(); x != x0 || !exp.Equal(exp0) {
		t.Errorf("page views within the slack rewrote the session: xmin %s→%s, expiry %s→%s", x0, x, exp0, exp)
	}
	time.Sleep(3100 * time.Millisecond)
	if login, _ := e.whoami(c); login != "developer" {
		t.Fatal("not signed in")
	}
	x1, exp1 := row()
	if x1 == x0 || !exp1.After(exp0) {
		t.Errorf("a page view past the slack did not push the expiry: xmin %s→%s, expiry %s→%s", x0, x1, exp0, exp1)
	}
	// Signing in again as someone else changes the data: written at once.
	resp, err := c.PostForm(e.url+"/dev/signin", url.Values{"login": {"platform"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if login, _ := e.whoami(c); login != "platform" {
		t.Fatalf("signed in as %q after switching to platform", login)
	}
	var n int
	if err := e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d session rows after switching user, want 1 (the old token renewed away)", n)
	}
}

func TestSignOutAndSignOutEverywhere(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	a, b, other := e.browser("developer"), e.browser("developer"), e.browser("outsider")
	ctx := context.Background()

	// Plain sign-out ends only that browser's session.
	c := e.browser("developer")
	resp, err := c.PostForm(e.url+"/signout", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if login, _ := e.whoami(c); login != "" {
		t.Error("signed in after sign-out")
	}
	if login, _ := e.whoami(a); login != "developer" {
		t.Fatal("sign-out ended another session")
	}

	// Keep copies of every session row, as a request in flight would
	// write its session back after the sign-out.
	rows, err := e.st.Pool().Query(ctx, `SELECT token, data, expiry FROM sessions`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		token  string
		data   []byte
		expiry time.Time
	}
	var saved []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.token, &r.data, &r.expiry); err != nil {
			t.Fatal(err)
		}
		saved = append(saved, r)
	}
	resp, err = a.PostForm(e.url+"/signout/everywhere", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Errorf("sign out everywhere: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, r := range saved {
		if _, err := e.st.Pool().Exec(ctx, `INSERT INTO sessions (token, data, expiry) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			r.token, r.data, r.expiry); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*http.Client{"this browser": a, "another browser": b} {
		if login, _ := e.whoami(c); login != "" {
			t.Errorf("%s still signed in as %s", name, login)
		}
	}
	if login, _ := e.whoami(other); login != "outsider" {
		t.Error("someone else was signed out")
	}
	if n := e.auditCount(store.AuditSignOutAll); n != 1 {
		t.Errorf("sign-out everywhere audited %d times", n)
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("sign-in", func(t *testing.T) {
		e := setup(t, web.Config{DevSignIn: true, SignInRate: 3})
		var last *http.Response
		for range 4 {
			resp, err := newBrowser().PostForm(e.url+"/dev/signin", url.Values{"login": {"developer"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			last = resp
		}
		if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
			t.Errorf("4th sign-in in a minute: %d, Retry-After %q", last.StatusCode, last.Header.Get("Retry-After"))
		}
		if n := e.auditCount(store.AuditSignIn); n != 3 {
			t.Errorf("%d sign-ins went through", n)
		}
	})
	t.Run("api per token owner", func(t *testing.T) {
		e := setup(t, web.Config{APIRate: 3})
		dev, other := e.token("developer"), e.token("outsider")
		var status []int
		for range 4 {
			resp, _ := e.apiDo(dev, "GET", "/api/v1/templates", "", nil)
			status = append(status, resp.StatusCode)
		}
		if status[2] != 200 || status[3] != http.StatusTooManyRequests {
			t.Errorf("developer's calls: %v", status)
		}
		if resp, _ := e.apiDo(other, "GET", "/api/v1/templates", "", nil); resp.StatusCode != 200 {
			t.Errorf("another user was limited too: %d", resp.StatusCode)
		}
		// Guessing tokens is limited per address, before any lookup.
		var last int
		for range 8 {
			resp, _ := e.apiDo("pdk_guess", "GET", "/api/v1/templates", "", nil)
			last = resp.StatusCode
		}
		if last != http.StatusTooManyRequests {
			t.Errorf("token guessing not limited: %d", last)
		}
	})
}

func TestProxySignIn(t *testing.T) {
	mk := func(trusted string) func(*env) web.Config {
		return func(*env) web.Config {
			p := web.DefaultProxyConfig()
			p.Mapping = web.ClaimMapping{Roles: testRoleMap, TeamPrefix: "team-"}
			return web.Config{Proxy: &p, TrustedProxies: []netip.Prefix{netip.MustParsePrefix(trusted)}}
		}
	}
	hdr := func(user, login, groups string) http.Header {
		return http.Header{"X-Forwarded-User": {user}, "X-Forwarded-Preferred-Username": {login},
			"X-Forwarded-Email": {login + "@example.com"}, "X-Forwarded-Groups": {groups}}
	}
	get := func(e *env, c *http.Client, h http.Header) (int, string) {
		req, _ := http.NewRequest("GET", e.url+"/profile", nil)
		req.Header = h
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		return resp.StatusCode, between(b, `data-testid="profile-login">`, "<") + "|" + between(b, `data-testid="profile-role">`, "<")
	}

	t.Run("trusted proxy", func(t *testing.T) {
		e := setupWith(t, mk("127.0.0.1/32"))
		c := newBrowser()
		for range 3 {
			if st, who := get(e, c, hdr("u-1", "bob", "paddock-managers, team-billing")); st != 200 || who != "bob|manager, team billing" {
				t.Fatalf("as bob: %d %s", st, who)
			}
		}
		if n := e.auditCount(store.AuditSignIn); n != 1 {
			t.Errorf("%d sign-ins for one session", n)
		}
		// Another person on the same browser gets their own session.
		if st, who := get(e, c, hdr("u-2", "carol", "paddock-devs")); st != 200 || who != "carol|developer" {
			t.Errorf("as carol: %d %s", st, who)
		}
		if st, _ := get(e, newBrowser(), hdr("u-3", "dave", "everyone")); st != http.StatusForbidden {
			t.Errorf("no role: %d", st)
		}
		// A team group naming a namespace of the cluster's is refused, saying why.
		req, _ := http.NewRequest("GET", e.url+"/profile", nil)
		req.Header = hdr("u-4", "erin", "paddock-devs, team-kube-system")
		resp, err := newBrowser().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "team-kube-system") ||
			!strings.Contains(b, "nor start with kube-") {
			t.Errorf("team kube-system: %d\n%s", resp.StatusCode, b)
		}
		if n := e.count(`SELECT count(*) FROM users WHERE login = 'erin'`) + e.count(`SELECT count(*) FROM teams WHERE namespace = 'kube-system'`); n != 0 {
			t.Error("a reserved namespace made a user or a team")
		}
		if n := e.auditCount(store.AuditSignInRefused); n != 2 {
			t.Errorf("%d refused sign-ins audited, want 2", n)
		}
	})
	t.Run("untrusted address", func(t *testing.T) {
		e := setupWith(t, mk("10.0.0.0/8"))
		c := newBrowser()
		req, _ := http.NewRequest("GET", e.url+"/profile", nil)
		req.Header = hdr("u-1", "mallory", "paddock-platform")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin") {
			t.Errorf("headers from an untrusted address: %d", resp.StatusCode)
		}
		if n := e.count(`SELECT count(*) FROM users WHERE login = 'mallory'`); n != 0 {
			t.Error("a user was created from untrusted headers")
		}
	})
}

func TestProfileTokens(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("developer")
	resp, err := c.PostForm(e.url+"/profile/tokens", url.Values{"name": {"ci <b>pipeline</b>"}, "expiresDays": {"30"}})
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	tok := between(b, `data-testid="new-token">`, "<")
	if resp.StatusCode != 200 || !strings.HasPrefix(tok, "pdk_") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %q %q", resp.StatusCode, tok, resp.Header.Get("Cache-Control"))
	}
	if strings.Contains(b, "<b>pipeline") || !strings.Contains(b, "ci &lt;b&gt;pipeline&lt;/b&gt;") {
		t.Error("token name rendered as markup")
	}
	// Shown once: the profile page lists the token but never its secret.
	resp, _ = c.Get(e.url + "/profile")
	b = body(t, resp)
	if strings.Contains(b, tok) || !strings.Contains(b, "ci &lt;b&gt;pipeline") {
		t.Error("the profile page shows the secret, or not the token")
	}
	if resp, _ := e.apiDo(tok, "GET", "/api/v1/templates", "", nil); resp.StatusCode != 200 {
		t.Fatalf("new token: %d", resp.StatusCode)
	}
	toks, _ := e.st.Tokens(context.Background(), e.users["developer"].ID)
	if len(toks) != 1 || toks[0].ExpiresAt == nil || time.Until(*toks[0].ExpiresAt) < 29*24*time.Hour {
		t.Fatalf("tokens: %+v", toks)
	}
	id := strconv.FormatInt(toks[0].ID, 10)

	// Validation names the field; nothing is created.
	resp, _ = c.PostForm(e.url+"/profile/tokens", url.Values{"name": {""}, "expiresDays": {"9999"}})
	b = body(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(b, `data-testid="error-name"`) ||
		!strings.Contains(b, `data-testid="error-expiresDays"`) {
		t.Errorf("invalid token form: %d", resp.StatusCode)
	}

	// Someone else cannot revoke it (nor learn that it exists).
	resp, _ = e.browser("outsider").PostForm(e.url+"/profile/tokens/"+id+"/revoke", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("outsider revokes: %d", resp.StatusCode)
	}
	resp, _ = c.PostForm(e.url+"/profile/tokens/"+id+"/revoke", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("revoke: %d", resp.StatusCode)
	}
	if resp, _ := e.apiDo(tok, "GET", "/api/v1/templates", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked token: %d", resp.StatusCode)
	}
	if e.auditCount(store.AuditTokenCreate) != 1 || e.auditCount(store.AuditTokenRevoke) != 1 {
		t.Error("token creation or revocation not audited")
	}
}

func TestTokenActsWithItsOwnersCurrentRole(t *testing.T) {
	e := setup(t, web.Config{})
	r, err := e.st.SubmitRequest(context.Background(), store.NewRequest{TeamID: e.teams["billing"].ID, Requester: e.users["outsider"],
		Template: "ubuntu-2404", Size: "small", Name: "billing-vm", SSHPublicKey: sshKey, LeaseDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.token("developer")
	path := "/api/v1/requests/" + strconv.FormatInt(r.ID, 10)
	if resp, _ := e.apiDo(tok, "GET", path, "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("developer reads billing's request: %d", resp.StatusCode)
	}
	if _, err := e.st.Pool().Exec(context.Background(), `UPDATE users SET role = 'platform' WHERE login = 'developer'`); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.apiDo(tok, "GET", path, "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after promotion to platform: %d", resp.StatusCode)
	}
}

func TestAuditLogPageAndCSVExport(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	dev := e.browser("developer")
	v := validForm()
	v.Set("name", `<img src=x onerror=alert(1)>`)
	resp, _ := dev.PostForm(e.url+"/requests", v)
	b := body(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity || strings.Contains(b, "<img src=x") || !strings.Contains(b, "&lt;img src=x") {
		t.Error("a VM name with markup is not shown as text")
	}
	resp, _ = dev.PostForm(e.url+"/requests", validForm())
	resp.Body.Close()
	if err := e.st.Audit(ctx, nil, store.Actor{Name: "=HYPERLINK(\"http://evil\")"}, "test", "<script>x</script>", nil); err != nil {
		t.Fatal(err)
	}

	mgr := e.browser("manager")
	resp, _ = mgr.Get(e.url + "/audit")
	b = body(t, resp)
	for _, want := range []string{"request_submit", "sign_in", "request:", "&lt;script&gt;x&lt;/script&gt;"} {
		if !strings.Contains(b, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
	if strings.Contains(b, "<script>x") {
		t.Error("audit target rendered as markup")
	}
	resp, _ = mgr.Get(e.url + "/audit?action=request_submit")
	if b := body(t, resp); strings.Contains(b, `<td title="sign_in">`) || !strings.Contains(b, `<td title="request_submit">Request submitted</td>`) {
		t.Error("action filter")
	}

	resp, err := mgr.Get(e.url + "/audit.csv")
	if err != nil {
		t.Fatal(err)
	}
	b = body(t, resp)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("csv: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	recs, err := csv.NewReader(strings.NewReader(b)).ReadAll()
	if err != nil || len(recs) < 4 || strings.Join(recs[0], ",") != "id,at,actor_id,actor,action,target,details" {
		t.Fatalf("csv: %v %q", err, b)
	}
	var formula, submit bool
	for _, r := range recs[1:] {
		if _, err := time.Parse(time.RFC3339Nano, r[1]); err != nil {
			t.Errorf("time %q", r[1])
		}
		formula = formula || r[3] == `'=HYPERLINK("http://evil")`
		submit = submit || r[4] == store.AuditRequestSubmit && r[3] == "developer" && r[2] == strconv.FormatInt(e.users["developer"].ID, 10)
	}
	if !formula || !submit {
		t.Errorf("csv rows: formula defused %v, submit with actor %v", formula, submit)
	}
	if e.auditCount("audit_export") != 1 {
		t.Error("the export is not audited")
	}
}

func TestFormBodiesAreLimited(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	v := validForm()
	v.Set("justification", strings.Repeat("a", web.MaxBodyBytes+1))
	resp, err := e.browser("developer").PostForm(e.url+"/requests", v)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form: %d", resp.StatusCode)
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Error("an oversized form was stored")
	}
}
