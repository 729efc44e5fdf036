package web_test

// The role × route matrix: every route registered in routes.go, called as
// every kind of person, with the outcome each must get. A route without a
// row fails TestEveryRouteIsInTheMatrix, so a new route cannot ship untested.
//
// To add a route: add one row to routeMatrix with
//   - route: the method and pattern exactly as registered ("GET /requests/{id}";
//     "* /pattern" covers every method of a r.Handle route);
//   - path: the URL to call, with placeholders from matrixFixtures filled in
//     afresh for every call ({req} is a new running request of team payments,
//     which the developer owns and the outsider must not see);
//   - body: a form (pages) or JSON (/api/...) body, placeholders allowed;
//   - want: the outcome for anonymous, developer (team payments), outsider
//     (a developer of team billing), manager and platform, in that order.
// Need a new kind of object? Add a placeholder to matrixFixtures.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
	"paddock/internal/web"
	"paddock/static"
)

// Outcomes. ok means authorization let the caller through: any 2xx or 3xx
// (other than to the sign-in page), or 409 and 422, where the action was then
// refused for the object's state or the input. The others are exact.
const (
	ok     = -1                      // let through
	signin = -2                      // sent to the sign-in page (pages, anonymous)
	unauth = http.StatusUnauthorized // API without a valid token
	denied = http.StatusForbidden    // the role may not do this
	hidden = http.StatusNotFound     // may not even know the object exists
	bad    = http.StatusBadRequest   // refused whoever asks (e.g. a callback without a sign-in)
)

// roles lists the expected outcome per caller.
type roles struct{ anon, dev, outsider, manager, platform int }

var callers = []string{"anonymous", "developer", "outsider", "manager", "platform"}

func (r roles) of(who string) int {
	return map[string]int{"anonymous": r.anon, "developer": r.dev, "outsider": r.outsider, "manager": r.manager, "platform": r.platform}[who]
}

type routeCase struct {
	route string
	path  string
	body  string
	want  roles
}

var (
	everyone      = roles{ok, ok, ok, ok, ok}
	signedIn      = roles{signin, ok, ok, ok, ok}
	apiSignedIn   = roles{unauth, ok, ok, ok, ok}
	ownTeam       = roles{signin, ok, hidden, ok, ok}     // see: the owning team, managers, platform
	ownTeamActs   = roles{signin, ok, hidden, denied, ok} // act: the owning team and platform
	apiOwnTeam    = roles{unauth, ok, hidden, ok, ok}
	apiOwnTeamAct = roles{unauth, ok, hidden, denied, ok}
	inATeam       = roles{signin, ok, ok, denied, ok} // request VMs: anyone in a team
	apiInATeam    = roles{unauth, ok, ok, denied, ok}
	auditors      = roles{signin, denied, denied, ok, ok}     // managers and platform
	templaters    = roles{signin, denied, denied, denied, ok} // the platform team's template pages
	approvers     = roles{signin, denied, denied, ok, ok}     // the approval queue: managers and platform
	apiApprovers  = roles{unauth, denied, denied, ok, ok}
	apiTemplaters = roles{unauth, denied, denied, denied, ok} // rollouts: the platform team
	guardians     = roles{signin, denied, denied, denied, ok} // quotas, approval rules, webhooks: platform
	ownerOnly     = roles{signin, ok, hidden, denied, denied} // pet or cattle: the VM's owner (the developer) only
	apiOwnerOnly  = roles{unauth, ok, hidden, denied, denied}
)

var routeMatrix = []routeCase{
	{"GET /healthz", "/healthz", "", everyone},
	{"GET /readyz", "/readyz", "", everyone},
	// Prometheus scrapes without credentials: public on this port (see the
	// metrics issue; restrict at the ingress if that is not wanted).
	{"GET /metrics", "/metrics", "", everyone},
	{"* /static/*", "{static}", "", everyone},

	// Sign-in and out.
	{"GET /signin", "/signin", "", everyone},
	{"POST /dev/signin", "/dev/signin", "login=developer", everyone},
	{"GET /auth/oidc/login", "/auth/oidc/login", "", everyone},
	{"GET /auth/oidc/callback", "/auth/oidc/callback?code=x&state=y", "", roles{bad, bad, bad, bad, bad}},
	{"POST /signout", "/signout", "", everyone},
	{"POST /signout/everywhere", "/signout/everywhere", "", signedIn},

	// Pages.
	{"GET /", "/", "", signedIn},
	{"GET /catalog", "/catalog", "", signedIn},
	{"GET /catalog/{name}", "/catalog/{tpl}", "", signedIn},
	{"GET /requests", "/requests", "", signedIn},
	{"GET /teams/{team}/manifests.zip", "/teams/payments/manifests.zip", "", ownTeam},
	{"GET /requests/new", "/requests/new", "", inATeam},
	{"POST /requests", "/requests", "template=ubuntu-2404&size=small&name=m-{n}&leaseDays=3&sshPublicKey={sshkey}", inATeam},
	{"POST /requests/preflight", "/requests/preflight", "template=ubuntu-2404&size=small&name=m-{n}&leaseDays=3&sshPublicKey={sshkey}", inATeam},
	{"GET /requests/{id}", "/requests/{req}", "", ownTeam},
	{"GET /requests/{id}/live", "/requests/{req}/live", "", ownTeam},
	{"GET /requests/{id}/stream", "/requests/{req}/stream", "", ownTeam},
	{"GET /requests/{id}/manifest", "/requests/{req}/manifest", "", ownTeam},
	{"GET /requests/{id}/console/{kind}", "/requests/{req}/console/vnc", "", ownTeamActs},
	// Authorization comes before anything else; a plain GET (no websocket
	// upgrade) is then refused whoever asks.
	{"GET /requests/{id}/console/{kind}/ws", "/requests/{req}/console/serial/ws", "", roles{signin, bad, hidden, denied, bad}},
	// The thumbnail of the VM's screen shows what its console shows: the
	// same people. ({req}'s VM does not run: the answer is a placeholder.)
	{"GET /requests/{id}/screenshot", "/requests/{req}/screenshot", "", ownTeamActs},
	{"POST /requests/{id}/actions/{action}", "/requests/{req}/actions/stop", "", ownTeamActs},
	{"POST /requests/{id}/extend", "/requests/{req}/extend", "days=1", ownTeamActs},
	{"POST /requests/{id}/rebuild", "/requests/{req}/rebuild", "version=0", ownTeamActs},
	{"POST /requests/{id}/pet", "/requests/{req}/pet", "pet=true", ownerOnly},
	// Scaling a pool: its owner and the platform team (canScale).
	{"POST /requests/{id}/scale", "/requests/{req}/scale", "replicas=2", ownTeamActs},
	{"GET /approvals", "/approvals", "", approvers},
	{"GET /approvals/live", "/approvals/live?seen=1&shown=x", "", approvers},
	{"POST /approvals/{approvalID}/{verdict}", "/approvals/{approval}/approve", "comment=ok", approvers},
	{"GET /platform/quotas", "/platform/quotas", "", guardians},
	{"POST /platform/quotas/{teamID}", "/platform/quotas/{team}", "vcpu=1000", guardians},
	{"GET /platform/rules", "/platform/rules", "", guardians},
	{"POST /platform/rules", "/platform/rules", "team=billing&template=&maxSize=large&autoApprove=on", guardians},
	{"POST /platform/rules/{ruleID}/delete", "/platform/rules/{rule}/delete", "", guardians},
	{"GET /platform/webhooks", "/platform/webhooks", "", guardians},
	{"GET /profile", "/profile", "", signedIn},
	{"POST /profile/tokens", "/profile/tokens", "name=t-{n}&expiresDays=30", signedIn},
	{"POST /profile/tokens/{tokenID}/revoke", "/profile/tokens/{token}/revoke", "", signedIn},
	{"GET /audit", "/audit", "", auditors},
	{"GET /audit.csv", "/audit.csv", "", auditors},
	// History: everyone signed in, narrowed to their team for developers
	// (see TestHistoryScope); insight: managers and platform.
	{"GET /history", "/history", "", signedIn},
	{"GET /history.csv", "/history.csv", "", signedIn},
	{"GET /insight", "/insight", "", roles{signin, denied, denied, ok, ok}},

	// The platform team's template pages ({tpl} is a fresh template).
	{"GET /platform/templates", "/platform/templates", "", templaters},
	{"POST /platform/templates", "/platform/templates", "name=fx-{n}&displayName=X&osFamily=linux&image.containerDisk=quay.io/x/y:1" +
		"&size.name=s&size.instancetype=u1.nano&sshUser=u&maxLeaseDays=3", templaters},
	{"GET /platform/templates/new", "/platform/templates/new", "", templaters},
	{"POST /platform/templates/preview", "/platform/templates/preview", "name=x", templaters},
	{"GET /platform/templates/import", "/platform/templates/import", "", templaters},
	{"POST /platform/templates/import", "/platform/templates/import", "yaml=name%3A+x", templaters},
	{"GET /platform/templates/{name}", "/platform/templates/{tpl}", "", templaters},
	{"POST /platform/templates/{name}", "/platform/templates/{tpl}", "displayName=Changed", templaters},
	{"GET /platform/templates/{name}/edit", "/platform/templates/{tpl}/edit", "", templaters},
	{"GET /platform/templates/{name}/clone", "/platform/templates/{tpl}/clone", "", templaters},
	{"GET /platform/templates/{name}/diff", "/platform/templates/{tpl}/diff", "", templaters},
	{"GET /platform/templates/{name}/versions/{version}", "/platform/templates/{tpl}/versions/1", "", templaters},
	{"POST /platform/templates/{name}/versions/{version}/republish", "/platform/templates/{tpl}/versions/1/republish", "", templaters},
	{"POST /platform/templates/{name}/versions/{version}/withdraw", "/platform/templates/{tpl}/versions/1/withdraw", "note=broken", templaters},
	{"POST /platform/templates/{name}/versions/{version}/reinstate", "/platform/templates/{tpl}/versions/1/reinstate", "", templaters},
	{"POST /platform/templates/{name}/deprecate", "/platform/templates/{tpl}/deprecate", "note=old", templaters},
	{"POST /platform/templates/{name}/restore", "/platform/templates/{tpl}/restore", "", templaters},
	{"POST /platform/templates/{name}/retire", "/platform/templates/{tpl}/retire", "", templaters},
	{"GET /platform/rollouts", "/platform/rollouts", "", templaters},
	{"GET /platform/rollouts/new", "/platform/rollouts/new?template=ubuntu-2404", "", templaters},
	{"POST /platform/rollouts", "/platform/rollouts", "template=ubuntu-2404&batchSize=2", templaters},
	{"GET /platform/rollouts/{rolloutID}", "/platform/rollouts/{rollout}", "", templaters},
	{"GET /platform/rollouts/{rolloutID}/progress", "/platform/rollouts/{rollout}/progress", "", templaters},
	{"POST /platform/rollouts/{rolloutID}/{action}", "/platform/rollouts/{rollout}/pause", "", templaters},

	// JSON API.
	{"GET /api/v1/openapi.json", "/api/v1/openapi.json", "", everyone},
	{"GET /api/v1/templates", "/api/v1/templates", "", apiSignedIn},
	{"GET /api/v1/requests", "/api/v1/requests", "", apiSignedIn},
	{"POST /api/v1/requests", "/api/v1/requests",
		`{"template":"ubuntu-2404","size":"small","name":"a-{n}","leaseDays":3,"sshPublicKey":"{sshkey}"}`, apiInATeam},
	{"GET /api/v1/requests/{id}", "/api/v1/requests/{req}", "", apiOwnTeam},
	{"GET /api/v1/requests/{id}/manifest", "/api/v1/requests/{req}/manifest", "", apiOwnTeam},
	{"POST /api/v1/requests/{id}/actions/{action}", "/api/v1/requests/{req}/actions/stop", "", apiOwnTeamAct},
	{"POST /api/v1/requests/{id}/extend", "/api/v1/requests/{req}/extend", `{"days":1}`, apiOwnTeamAct},
	{"POST /api/v1/requests/{id}/rebuild", "/api/v1/requests/{req}/rebuild", `{"version":0}`, apiOwnTeamAct},
	{"POST /api/v1/requests/{id}/pet", "/api/v1/requests/{req}/pet", `{"pet":true}`, apiOwnerOnly},
	{"POST /api/v1/requests/{id}/scale", "/api/v1/requests/{req}/scale", `{"replicas":2}`, apiOwnTeamAct},
	{"GET /api/v1/approvals", "/api/v1/approvals", "", apiApprovers},
	{"POST /api/v1/approvals/{approvalID}/{verdict}", "/api/v1/approvals/{approval}/approve", `{"comment":"ok"}`, apiApprovers},
	{"DELETE /api/v1/requests/{id}", "/api/v1/requests/{req}", "", apiOwnTeamAct},
	{"GET /api/v1/rollouts", "/api/v1/rollouts", "", apiTemplaters},
	{"POST /api/v1/rollouts", "/api/v1/rollouts", `{"template":"ubuntu-2404","batchSize":2}`, apiTemplaters},
	{"GET /api/v1/rollouts/{rolloutID}", "/api/v1/rollouts/{rollout}", "", apiTemplaters},
	{"POST /api/v1/rollouts/{rolloutID}/{action}", "/api/v1/rollouts/{rollout}/pause", "", apiTemplaters},
}

// matrixEnv is the server the matrix runs against.
type matrixEnv struct {
	*env
	n atomic.Int64
}

// matrixFixtures fill a path or body placeholder, freshly for each call by who.
var matrixFixtures = map[string]func(m *matrixEnv, who string) string{
	"{n}":      func(m *matrixEnv, _ string) string { return strconv.FormatInt(m.n.Add(1), 10) },
	"{sshkey}": func(*matrixEnv, string) string { return url.QueryEscape(sshKey) },
	"{static}": func(*matrixEnv, string) string { return static.URL("app.css") },
	// A running request of team payments, with its VM.
	"{req}": func(m *matrixEnv, _ string) string { return strconv.FormatInt(m.runningRequest(), 10) },
	// A new template, a copy of ubuntu-2404 open to every team.
	"{tpl}": func(m *matrixEnv, _ string) string {
		ctx := context.Background()
		t, err := m.st.TemplateByName(ctx, "ubuntu-2404")
		if err != nil {
			m.t.Fatal(err)
		}
		t.Spec.Name = fmt.Sprintf("fx-tpl-%d", m.n.Add(1))
		if _, _, err := m.st.PublishTemplate(ctx, t.Spec, nil); err != nil {
			m.t.Fatal(err)
		}
		return t.Spec.Name
	},
	// An open approval: a request of the developer's that needs a person.
	"{approval}": func(m *matrixEnv, _ string) string {
		ctx := context.Background()
		r, err := m.st.SubmitRequest(ctx, store.NewRequest{TeamID: m.teams["payments"].ID, Requester: m.users["developer"],
			Template: "centos-stream9", Size: "medium", Name: fmt.Sprintf("fx-%d", m.n.Add(1)), SSHPublicKey: sshKey, LeaseDays: 3})
		if err != nil {
			m.t.Fatal(err)
		}
		as, err := m.st.ApprovalsOf(ctx, r.ID)
		if err != nil || len(as) != 1 {
			m.t.Fatalf("approval of fixture request: %v %d", err, len(as))
		}
		return strconv.FormatInt(as[0].ID, 10)
	},
	// A running rollout of a fresh template over one VM on its v1.
	"{rollout}": func(m *matrixEnv, _ string) string { return strconv.FormatInt(m.rollout(), 10) },
	"{team}":    func(m *matrixEnv, _ string) string { return strconv.FormatInt(m.teams["billing"].ID, 10) },
	// An approval rule for a fresh template.
	"{rule}": func(m *matrixEnv, _ string) string {
		ctx := context.Background()
		t, err := m.st.TemplateByName(ctx, "ubuntu-2404")
		if err != nil {
			m.t.Fatal(err)
		}
		t.Spec.Name = fmt.Sprintf("fx-rule-%d", m.n.Add(1))
		if _, _, err := m.st.PublishTemplate(ctx, t.Spec, nil); err != nil {
			m.t.Fatal(err)
		}
		if err := m.st.SetApprovalRule(ctx, store.RuleInput{Template: t.Spec.Name, MaxSize: "small"}, store.Actor{Name: "fixture"}); err != nil {
			m.t.Fatal(err)
		}
		rules, err := m.st.ApprovalRules(ctx)
		if err != nil {
			m.t.Fatal(err)
		}
		for _, r := range rules {
			if r.TemplateName == t.Spec.Name {
				return strconv.FormatInt(r.ID, 10)
			}
		}
		m.t.Fatal("fixture rule not found")
		return ""
	},
	// A token of the caller (of the developer for anonymous callers).
	"{token}": func(m *matrixEnv, who string) string {
		if who == "anonymous" {
			who = "developer"
		}
		exp := time.Now().Add(time.Hour)
		if _, err := m.st.CreateToken(context.Background(), m.users[who].ID, "fixture", &exp); err != nil {
			m.t.Fatal(err)
		}
		toks, err := m.st.Tokens(context.Background(), m.users[who].ID)
		if err != nil {
			m.t.Fatal(err)
		}
		return strconv.FormatInt(toks[0].ID, 10)
	},
}

func (m *matrixEnv) runningRequest() int64 {
	m.t.Helper()
	ctx := context.Background()
	r, err := m.st.SubmitRequest(ctx, store.NewRequest{TeamID: m.teams["payments"].ID, Requester: m.users["developer"],
		Template: "ubuntu-2404", Size: "small", Name: fmt.Sprintf("fx-%d", m.n.Add(1)), SSHPublicKey: sshKey, LeaseDays: 3})
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := m.st.Transition(ctx, r.ID, store.StateRunning, store.ActorCluster, "test", "", store.StateApproved); err != nil {
		m.t.Fatal(err)
	}
	if _, err := m.st.Pool().Exec(ctx, `INSERT INTO vms (request_id, namespace, name, manifest) VALUES ($1, 'payments', $2, $3)`,
		r.ID, r.Name, "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: "+r.Name+"\nspec: {}\n"); err != nil {
		m.t.Fatal(err)
	}
	return r.ID
}

func (m *matrixEnv) rollout() int64 {
	m.t.Helper()
	ctx := context.Background()
	t, err := m.st.TemplateByName(ctx, "ubuntu-2404")
	if err != nil {
		m.t.Fatal(err)
	}
	spec := t.Spec
	spec.Name = fmt.Sprintf("fx-ro-%d", m.n.Add(1))
	if _, _, err := m.st.PublishTemplate(ctx, spec, nil); err != nil {
		m.t.Fatal(err)
	}
	r, err := m.st.SubmitRequest(ctx, store.NewRequest{TeamID: m.teams["payments"].ID, Requester: m.users["developer"],
		Template: spec.Name, Size: "small", Name: fmt.Sprintf("fx-%d", m.n.Add(1)), SSHPublicKey: sshKey, LeaseDays: 3})
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := m.st.Transition(ctx, r.ID, store.StateRunning, store.ActorCluster, "test", "", store.StateApproved); err != nil {
		m.t.Fatal(err)
	}
	spec.Description = "v2"
	if _, _, err := m.st.PublishTemplate(ctx, spec, nil); err != nil {
		m.t.Fatal(err)
	}
	id, err := m.st.StartRollout(ctx, store.NewRollout{Template: spec.Name}, store.Actor{Name: "fixture"})
	if err != nil {
		m.t.Fatal(err)
	}
	return id
}

func (m *matrixEnv) fill(s, who string) string {
	for k, fn := range matrixFixtures {
		for strings.Contains(s, k) {
			s = strings.Replace(s, k, fn(m, who), 1)
		}
	}
	return s
}

// setupMatrix starts a server with every sign-in method on (so that each
// sign-in route does something) and rate limits out of the way.
func setupMatrix(t *testing.T) *matrixEnv {
	t.Helper()
	e := setupWith(t, func(e *env) web.Config {
		o := newTestOP(t, e.url+"/auth/oidc/callback")
		return web.Config{DevSignIn: true, SignInRate: 1_000_000, APIRate: 1_000_000,
			OIDC: &web.OIDCConfig{Issuer: o.issuer, ClientID: opClientID, ClientSecret: opClientSecret,
				RedirectURL: e.url + "/auth/oidc/callback", Mapping: web.ClaimMapping{Roles: testRoleMap}}}
	})
	return &matrixEnv{env: e}
}

// do calls path as who: pages with a fresh signed-in browser, the API with
// a fresh token of who.
func (m *matrixEnv) do(who, method, path, payload string, hdr http.Header) *http.Response {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, m.url+path, strings.NewReader(payload))
	if err != nil {
		m.t.Fatal(err)
	}
	if hdr != nil {
		req.Header = hdr.Clone()
	}
	c := newBrowser()
	if strings.HasPrefix(path, "/api/") {
		if who != "anonymous" {
			req.Header.Set("Authorization", "Bearer "+m.token(who))
		}
		if payload != "" {
			req.Header.Set("Content-Type", "application/json")
		}
	} else {
		if who != "anonymous" {
			c = m.browser(who)
		}
		if payload != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		m.t.Fatalf("%s %s as %s: %v", method, path, who, err)
	}
	// Event streams never end on their own: the status is all we need.
	resp.Body.Close()
	return resp
}

// outcome classifies a response as one of the outcomes above.
func outcome(resp *http.Response) int {
	loc := resp.Header.Get("Location")
	switch s := resp.StatusCode; {
	case s == http.StatusSeeOther && strings.HasPrefix(loc, "/signin?next="):
		return signin
	case s < 400, s == http.StatusConflict, s == http.StatusUnprocessableEntity:
		return ok
	default:
		return s
	}
}

func outcomeName(o int) string {
	switch o {
	case ok:
		return "ok"
	case signin:
		return "sign-in"
	}
	return strconv.Itoa(o)
}

func TestRoleRouteMatrix(t *testing.T) {
	m := setupMatrix(t)
	for _, rc := range routeMatrix {
		method, _, _ := strings.Cut(rc.route, " ")
		if method == "*" {
			method = http.MethodGet
		}
		for _, who := range callers {
			want := rc.want.of(who)
			path, payload := m.fill(rc.path, who), m.fill(rc.body, who)
			resp := m.do(who, method, path, payload, nil)
			if got := outcome(resp); got != want {
				t.Errorf("%s as %s (%s %s): got %s (%d %s), want %s", rc.route, who, method, path,
					outcomeName(got), resp.StatusCode, resp.Header.Get("Location"), outcomeName(want))
			}
		}
	}
}

// registeredRoutes lists "METHOD /pattern" for every route in routes.go.
func registeredRoutes(t *testing.T, s *web.Server) []string {
	t.Helper()
	var out []string
	err := chi.Walk(s.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+strings.ReplaceAll(route, "/*/", "/"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestEveryRouteIsInTheMatrix(t *testing.T) {
	e := setup(t, web.Config{})
	rows := map[string]bool{}
	for _, rc := range routeMatrix {
		if rows[rc.route] {
			t.Errorf("routeMatrix has two rows for %s", rc.route)
		}
		rows[rc.route] = true
	}
	var missing []string
	seen := map[string]bool{}
	for _, r := range registeredRoutes(t, e.web) {
		_, pattern, _ := strings.Cut(r, " ")
		switch {
		case rows[r]:
			seen[r] = true
		case rows["* "+pattern]:
			seen["* "+pattern] = true
		default:
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d route(s) have no row in routeMatrix (internal/web/authz_matrix_test.go). "+
			"Add one per route, with the outcome for anonymous, developer, outsider, manager and platform:\n\t%s",
			len(missing), strings.Join(missing, "\n\t"))
	}
	var stale []string
	for r := range rows {
		if !seen[r] {
			stale = append(stale, r)
		}
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		t.Errorf("routeMatrix has rows for routes that are not registered (renamed or removed?):\n\t%s", strings.Join(stale, "\n\t"))
	}
}

// TestCrossSiteRequestsAreRefusedOnEveryStateChangingRoute sends every
// state-changing route (whatever its method) a cross-site request from a
// signed-in platform engineer's browser: each must be refused before it
// changes anything.
func TestCrossSiteRequestsAreRefusedOnEveryStateChangingRoute(t *testing.T) {
	m := setupMatrix(t)
	req := m.runningRequest()
	tok := m.fill("{token}", "platform")
	param := func(name string) string {
		switch name {
		case "id":
			return strconv.FormatInt(req, 10)
		case "tokenID":
			return tok
		case "action":
			return "stop"
		}
		return "x"
	}
	var unsafe []string
	for _, r := range registeredRoutes(t, m.web) {
		method, pattern, _ := strings.Cut(r, " ")
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodConnect:
			continue
		}
		unsafe = append(unsafe, r)
		path := pattern
		for {
			i := strings.Index(path, "{")
			if i < 0 {
				break
			}
			j := strings.Index(path[i:], "}")
			path = path[:i] + param(path[i+1:i+j]) + path[i+j+1:]
		}
		path = strings.ReplaceAll(path, "*", "x")
		// m.do signs in or makes a token first (both audited); anything
		// else counted here would be the refused request's doing.
		const changes = `SELECT (SELECT count(*) FROM audit_log WHERE action NOT IN ('sign_in', 'token_create'))
			+ (SELECT count(*) FROM requests) + (SELECT count(*) FROM events) + (SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL)`
		before := m.count(changes)
		resp := m.do("platform", method, path, "name=x&login=developer", http.Header{
			"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site %s %s: %d, want 403", method, path, resp.StatusCode)
		}
		if after := m.count(changes); after != before {
			t.Errorf("cross-site %s %s changed something", method, path)
		}
	}
	if len(unsafe) < 10 {
		t.Errorf("only %d state-changing routes found: %v", len(unsafe), unsafe)
	}
	// The same request from Paddock's own pages goes through.
	resp := m.do("platform", http.MethodPost, fmt.Sprintf("/requests/%d/actions/stop", req), "", http.Header{
		"Origin": {m.url}, "Sec-Fetch-Site": {"same-origin"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin stop: %d", resp.StatusCode)
	}
}
