package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/testdb"
	"paddock/internal/web"
	"paddock/templates"
)

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo dev@example"

type env struct {
	t     *testing.T
	srv   *httptest.Server
	st    *store.Store
	teams map[string]store.Team
	users map[string]store.User
	// url is the server's address, known before it starts.
	url string
	// logs is everything the server logged.
	logs *logBuffer
	// web is the server under test.
	web *web.Server
}

// logBuffer collects log output from concurrent handlers.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// setup starts the web server on a private database seeded with teams
// payments and billing, a developer in each, a platform engineer and a
// manager, and the example templates.
func setup(t *testing.T, cfg web.Config) *env {
	t.Helper()
	return setupWith(t, func(*env) web.Config { return cfg })
}

// setupWith is setup with a configuration made once the server's address
// (e.url) is known, as a redirect URL needs it.
func setupWith(t *testing.T, mk func(e *env) web.Config) *env {
	t.Helper()
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	st := store.New(pool)
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st.SetJobClient(jobs)
	e := &env{t: t, st: st, teams: map[string]store.Team{}, users: map[string]store.User{}}
	for _, name := range []string{"payments", "billing"} {
		tm, err := st.EnsureTeam(ctx, name, name)
		if err != nil {
			t.Fatal(err)
		}
		e.teams[name] = tm
	}
	pay, bill := e.teams["payments"].ID, e.teams["billing"].ID
	for _, u := range []struct {
		login string
		role  store.Role
		team  *int64
	}{
		{"developer", store.RoleDeveloper, &pay},
		{"outsider", store.RoleDeveloper, &bill},
		{"platform", store.RolePlatform, &pay},
		{"manager", store.RoleManager, nil},
	} {
		usr, err := st.EnsureUser(ctx, u.login, u.login, u.role, u.team)
		if err != nil {
			t.Fatal(err)
		}
		e.users[u.login] = usr
	}
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	e.srv = httptest.NewUnstartedServer(nil)
	e.url = "http://" + e.srv.Listener.Addr().String()
	e.logs = &logBuffer{}
	e.web = web.New(mk(e), st, nil, nil, slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	e.srv.Config.Handler = checkAPI(t, e.web.Handler())
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

// browser returns a client signed in (through the dev sign-in) as login.
func (e *env) browser(login string) *http.Client {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if login == "" {
		return c
	}
	resp, err := c.PostForm(e.srv.URL+"/dev/signin", url.Values{"login": {login}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign in as %s: %d", login, resp.StatusCode)
	}
	return c
}

func (e *env) token(login string) string {
	e.t.Helper()
	tok, err := e.st.CreateToken(context.Background(), e.users[login].ID, "test", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (e *env) apiDo(tok, method, path, payload string, hdr map[string]string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(payload))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if payload != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body(e.t, resp)
}

func (e *env) count(q string) int {
	var n int
	if err := e.st.Pool().QueryRow(context.Background(), q).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func validForm() url.Values {
	return url.Values{"template": {"ubuntu-2404"}, "size": {"small"}, "name": {"web-1"},
		"sshPublicKey": {sshKey}, "leaseDays": {"7"}, "justification": {"load testing"}}
}

func TestPagesRequireSignIn(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("")
	for _, p := range []string{"/", "/catalog", "/requests", "/requests/new", "/requests/1"} {
		resp, err := c.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin") {
			t.Errorf("%s: %d %s", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestDevSignInOnlyWhenEnabled(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: false})
	resp, err := http.PostForm(e.srv.URL+"/dev/signin", url.Values{"login": {"developer"}})
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("dev sign-in without DevSignIn: %d", resp.StatusCode)
	}
	if strings.Contains(b, "signin-developer") {
		t.Error("sign-in page lists users")
	}
}

func TestRequestFormValidationShowsErrorsAndStoresNothing(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("developer")
	cases := map[string]func(url.Values){
		"name":         func(v url.Values) { v.Set("name", "Bad_Name") },
		"sshPublicKey": func(v url.Values) { v.Set("sshPublicKey", "not a key") },
		"leaseDays":    func(v url.Values) { v.Set("leaseDays", "many") },
		"size":         func(v url.Values) { v.Set("size", "gigantic") },
		"template":     func(v url.Values) { v.Set("template", "nope") },
	}
	for field, mod := range cases {
		v := validForm()
		mod(v)
		resp, err := c.PostForm(e.srv.URL+"/requests", v)
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d", field, resp.StatusCode)
		}
		if !strings.Contains(b, `data-testid="error-`+field+`"`) {
			t.Errorf("%s: no error at the field", field)
		}
		// What the user typed is kept.
		if field != "name" && !strings.Contains(b, `value="web-1"`) {
			t.Errorf("%s: the form lost the name", field)
		}
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("%d requests stored", n)
	}
}

func TestRequestFormSubmitsAndShowsRequest(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("developer")
	resp, err := c.PostForm(e.srv.URL+"/requests", validForm())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/requests/") {
		t.Fatalf("submit: %d %s", resp.StatusCode, loc)
	}
	resp, err = c.Get(e.srv.URL + loc)
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	for _, want := range []string{`data-testid="state">approved<`, "auto-approved", "load testing", `data-live-stream="` + loc + `/stream"`} {
		if !strings.Contains(b, want) {
			t.Errorf("request page lacks %q", want)
		}
	}
	// The live fragment renders on its own.
	resp, err = c.Get(e.srv.URL + loc + "/live")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != 200 || strings.Contains(b, "<html") || !strings.Contains(b, `data-testid="state"`) {
		t.Errorf("live fragment: %d", resp.StatusCode)
	}
}

func TestMarkupInUserInputRendersAsText(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("developer")
	v := validForm()
	v.Set("justification", `<script>alert(1)</script><img src=x onerror=alert(2)>`)
	resp, err := c.PostForm(e.srv.URL+"/requests", v)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, _ = c.Get(e.srv.URL + resp.Header.Get("Location"))
	b := body(t, resp)
	if strings.Contains(b, "<script>alert(1)") || strings.Contains(b, "<img src=x") {
		t.Error("justification rendered as markup")
	}
	if !strings.Contains(b, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("justification not shown escaped")
	}
}

func TestDevelopersSeeOnlyTheirTeam(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	r, err := e.st.SubmitRequest(context.Background(), store.NewRequest{TeamID: e.teams["payments"].ID, Requester: e.users["developer"],
		Template: "ubuntu-2404", Size: "small", Name: "secret-vm", SSHPublicKey: sshKey, LeaseDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(r.ID, 10)
	for login, want := range map[string]int{"developer": 200, "outsider": 404, "platform": 200, "manager": 200} {
		resp, err := e.browser(login).Get(e.srv.URL + "/requests/" + id)
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		if resp.StatusCode != want {
			t.Errorf("%s: page status %d, want %d", login, resp.StatusCode, want)
		}
		resp, _ = e.apiDo(e.token(login), "GET", "/api/v1/requests/"+id, "", nil)
		if resp.StatusCode != want {
			t.Errorf("%s: api status %d, want %d", login, resp.StatusCode, want)
		}
		resp, err = e.browser(login).Get(e.srv.URL + "/requests")
		if err != nil {
			t.Fatal(err)
		}
		b = body(t, resp)
		if strings.Contains(b, "secret-vm") != (want == 200) {
			t.Errorf("%s: list shows secret-vm = %v", login, !(want == 200))
		}
	}
	// Only the owning team and the platform team act on it; managers don't.
	for login, want := range map[string]int{"outsider": 404, "manager": 403} {
		resp, _ := e.apiDo(e.token(login), "POST", "/api/v1/requests/"+id+"/actions/stop", "", nil)
		if resp.StatusCode != want {
			t.Errorf("%s stop: %d, want %d", login, resp.StatusCode, want)
		}
	}
}

func TestAPIRequestJourneyAndErrors(t *testing.T) {
	e := setup(t, web.Config{})
	tok := e.token("developer")
	if resp, _ := e.apiDo("", "GET", "/api/v1/templates", "", nil); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if resp, _ := e.apiDo("pdk_nope", "GET", "/api/v1/templates", "", nil); resp.StatusCode != 401 {
		t.Errorf("bad token: %d", resp.StatusCode)
	}
	resp, b := e.apiDo(tok, "GET", "/api/v1/templates", "", nil)
	var tpls struct {
		Items []struct {
			Name  string `json:"name"`
			Sizes []struct {
				Name string `json:"name"`
			} `json:"sizes"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(b), &tpls); err != nil || resp.StatusCode != 200 || len(tpls.Items) == 0 || len(tpls.Items[0].Sizes) == 0 {
		t.Fatalf("templates: %d %v %s", resp.StatusCode, err, b)
	}

	bad := []struct {
		name, payload string
		status        int
		fields        []string
	}{
		{"malformed", `{"template":`, 400, nil},
		{"not json", `hello`, 400, nil},
		{"two objects", `{} {}`, 400, nil},
		{"unknown field", `{"template":"ubuntu-2404","colour":"red"}`, 422, []string{"colour"}},
		{"wrong type", `{"leaseDays":"seven"}`, 422, []string{"leaseDays"}},
		{"every field bad", `{"template":"ubuntu-2404","size":"huge","name":"-x-","sshPublicKey":"nope","leaseDays":0}`, 422,
			[]string{"size", "name", "sshPublicKey", "leaseDays"}},
		{"too large", `{"justification":"` + strings.Repeat("a", 1<<20) + `"}`, 413, nil},
	}
	for _, c := range bad {
		resp, b := e.apiDo(tok, "POST", "/api/v1/requests", c.payload, nil)
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, resp.StatusCode, c.status, b)
			continue
		}
		var ae struct {
			Error  string `json:"error"`
			Fields []struct{ Field, Message string }
		}
		if err := json.Unmarshal([]byte(b), &ae); err != nil || ae.Error == "" {
			t.Errorf("%s: error body %q", c.name, b)
		}
		for _, f := range c.fields {
			found := false
			for _, got := range ae.Fields {
				found = found || got.Field == f && got.Message != ""
			}
			if !found {
				t.Errorf("%s: no message for field %s in %s", c.name, f, b)
			}
		}
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Fatalf("bad input stored %d requests", n)
	}

	good := `{"template":"ubuntu-2404","size":"small","name":"api-vm","sshPublicKey":"` + sshKey + `","leaseDays":5,"justification":"ci"}`
	hdr := map[string]string{"Idempotency-Key": "abc-123"}
	resp, b = e.apiDo(tok, "POST", "/api/v1/requests", good, hdr)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
	}
	_ = json.Unmarshal([]byte(b), &created)
	if created.ID == 0 || created.State != "approved" || resp.Header.Get("Location") == "" {
		t.Fatalf("created: %s", b)
	}
	// A retry with the same key is the same request.
	resp, b = e.apiDo(tok, "POST", "/api/v1/requests", good, hdr)
	var again struct{ ID int64 }
	_ = json.Unmarshal([]byte(b), &again)
	if resp.StatusCode != 201 || again.ID != created.ID {
		t.Errorf("retry: %d id %d, want %d", resp.StatusCode, again.ID, created.ID)
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 1 {
		t.Errorf("%d requests after retry", n)
	}
	// The list pages with a next link.
	for i := range 3 {
		p := strings.Replace(good, "api-vm", "api-vm-"+strconv.Itoa(i), 1)
		if resp, b := e.apiDo(tok, "POST", "/api/v1/requests", p, nil); resp.StatusCode != 201 {
			t.Fatalf("create %d: %s", i, b)
		}
	}
	seen := map[int64]bool{}
	next := "/api/v1/requests?limit=3"
	for next != "" {
		resp, b := e.apiDo(tok, "GET", next, "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list: %d %s", resp.StatusCode, b)
		}
		var page struct {
			Items []struct{ ID int64 }
			Next  string
		}
		_ = json.Unmarshal([]byte(b), &page)
		for _, it := range page.Items {
			if seen[it.ID] {
				t.Errorf("request %d listed twice", it.ID)
			}
			seen[it.ID] = true
		}
		next = page.Next
	}
	if len(seen) != 4 {
		t.Errorf("listed %d requests, want 4", len(seen))
	}
	if resp, _ := e.apiDo(tok, "GET", "/api/v1/requests?limit=0", "", nil); resp.StatusCode != 422 {
		t.Errorf("limit=0: %d", resp.StatusCode)
	}
	if resp, _ := e.apiDo(tok, "GET", "/api/v1/requests/"+strconv.FormatInt(created.ID, 10)+"/manifest", "", nil); resp.StatusCode != 404 {
		t.Errorf("manifest before the VM exists: %d", resp.StatusCode)
	}
}

func TestSecurityHeadersAndCrossOriginPosts(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	resp, err := http.Get(e.srv.URL + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if csp == "" || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") == "" {
		t.Error("nosniff or Referrer-Policy missing")
	}
	c := e.browser("developer")
	req, _ := http.NewRequest("POST", e.srv.URL+"/requests", strings.NewReader(validForm().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d", resp.StatusCode)
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Error("cross-site POST stored a request")
	}
}

func TestCatalogFilters(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("developer")
	for q, want := range map[string][]string{
		"":           {"template-ubuntu-2404", "template-fedora", "template-cirros"},
		"?os=fedora": {"template-fedora"},
		"?tag=tiny":  {"template-cirros"},
		"?q=golden":  {"template-centos-stream9"},
	} {
		resp, err := c.Get(e.srv.URL + "/catalog" + q)
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		n := strings.Count(b, `data-testid="template-`)
		if n != len(want) && q != "" {
			t.Errorf("catalog%s shows %d templates, want %d", q, n, len(want))
		}
		for _, w := range want {
			if !strings.Contains(b, `data-testid="`+w+`"`) {
				t.Errorf("catalog%s lacks %s", q, w)
			}
		}
	}
}

func TestDevSignInShowsThePersonasFirstAndNoDisabledUser(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	if _, err := e.st.EnsureUser(ctx, "leaver", "Leaver", store.RoleDeveloper, e.users["developer"].TeamID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.DisableUser(ctx, store.Actor{Name: "test"}, "leaver", "left"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.srv.URL + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	at := func(login string) int { return strings.Index(b, `data-testid="signin-`+login+`"`) }
	dev, plat, mgr, other := at("developer"), at("platform"), at("manager"), at("outsider")
	if dev < 0 || plat < dev || mgr < plat {
		t.Errorf("personas not first and in order: developer %d, platform %d, manager %d", dev, plat, mgr)
	}
	if other >= 0 && other < mgr {
		t.Errorf("another seeded user (%d) comes before the personas", other)
	}
	if other < 0 || at("leaver") >= 0 {
		t.Errorf("the other user is missing (%d), or the disabled one is offered", other)
	}
}

// The catalog's cards are kept per catalog version and kind of user, and
// every page checks the version: a change made elsewhere (another replica,
// or by hand) shows on the next page, each team sees only what is open to
// it, and the Request button only those who may request.
func TestCatalogFollowsChangesMadeElsewhereAndKeepsUsersApart(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	spec := store.TemplateSpec{Name: "payments-only", DisplayName: "Payments only", OSFamily: "ubuntu", SSHUser: "ubuntu",
		Image: store.ImageSource{ContainerDisk: "quay.io/containerdisks/ubuntu:24.04"}, Teams: []string{"payments"},
		Sizes: []store.Size{{Name: "small", CPU: 1, MemoryMiB: 1024}}, MaxLeaseDays: 7}
	if _, _, err := e.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	dev, outsider, mgr := e.browser("developer"), e.browser("outsider"), e.browser("manager")
	catalog := func(c *http.Client) string {
		t.Helper()
		resp, b := e.get(c, "/catalog")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("catalog: %d", resp.StatusCode)
		}
		return b
	}
	has := func(b, name string) bool { return strings.Contains(b, `data-testid="template-`+name+`"`) }
	const ask = `href="/requests/new?template=`
	for range 2 { // the second time from memory
		if b := catalog(dev); !has(b, "fedora") || !has(b, "payments-only") || !strings.Contains(b, ask+"fedora") {
			t.Fatal("the developer's catalog lacks fedora, the team's own template or the Request button")
		}
		if b := catalog(outsider); !has(b, "fedora") || has(b, "payments-only") {
			t.Fatal("another team's catalog: fedora missing, or payments' own template offered")
		}
		if b := catalog(mgr); !has(b, "fedora") || strings.Contains(b, ask) {
			t.Fatal("the manager's catalog lacks fedora, or offers a Request button to someone without a team")
		}
	}
	// Deprecated by hand, as another replica's platform team would.
	if _, err := e.st.Pool().Exec(ctx, `UPDATE templates SET deprecated_at = now(), deprecation_note = 'gone' WHERE name = 'fedora'`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*http.Client{dev, outsider, mgr} {
		if b := catalog(c); has(b, "fedora") || !has(b, "cirros") {
			t.Fatal("a template deprecated elsewhere is still offered, or the others went with it")
		}
	}
	if _, err := e.st.Pool().Exec(ctx, `UPDATE templates SET deprecated_at = NULL, deprecation_note = '' WHERE name = 'fedora'`); err != nil {
		t.Fatal(err)
	}
	if b := catalog(dev); !has(b, "fedora") {
		t.Fatal("a template restored elsewhere is not offered again")
	}
}
