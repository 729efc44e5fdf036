package web_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
	"paddock/internal/web"
)

// histRow writes a request as history has it, at a chosen time.
func (e *env) histRow(team, login, template, name, justif string, state store.State, created time.Time) int64 {
	e.t.Helper()
	tpl, err := e.st.TemplateByName(context.Background(), template)
	if err != nil {
		e.t.Fatal(err)
	}
	var id int64
	err = e.st.Pool().QueryRow(context.Background(), `
		INSERT INTO requests (team_id, requester_id, template_id, template_version, size, vcpu, memory_mib, name,
			ssh_public_key, lease_days, justification, state, created_at, updated_at, expires_at)
		VALUES ($1, $2, $3, $4, 'small', 1, 2048, $5, $6, 7, $7, $8, $9, $9, $9::timestamptz + interval '7 days')
		RETURNING id`, e.teams[team].ID, e.users[login].ID, tpl.ID, tpl.Version, name, sshKey, justif, state, created).Scan(&id)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// fetch GETs path as c and returns the status and body.
func (e *env) fetch(c *http.Client, path string) (int, string) {
	e.t.Helper()
	resp, b := e.get(c, path)
	return resp.StatusCode, b
}

var historyRowRE = regexp.MustCompile(`<a href="/requests/\d+">([^<]+)</a>`)

// listed returns the request names a history page lists, in order.
func listed(page string) []string {
	var out []string
	for _, m := range historyRowRE.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func TestHistoryScopeAndFilters(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	e.histRow("payments", "developer", "ubuntu-2404", "pay-web", "Load testing checkout", store.StateDeleted, t0)
	e.histRow("payments", "developer", "fedora", "pay-db", "migration rehearsal", store.StateRunning, t0.Add(24*time.Hour))
	e.histRow("billing", "outsider", "ubuntu-2404", "bill-ci", "ci runner", store.StateFailed, t0.Add(48*time.Hour))

	dev, mgr, out := e.browser("developer"), e.browser("manager"), e.browser("outsider")
	for _, c := range []struct {
		who  *http.Client
		path string
		want []string
	}{
		// Developers see their own team's history only, whatever they ask for.
		{dev, "/history", []string{"pay-db", "pay-web"}},
		{dev, "/history?team=billing", []string{"pay-db", "pay-web"}},
		{out, "/history", []string{"bill-ci"}},
		{dev, "/history?q=ci+runner", nil},
		// Managers see every team and filter by each field.
		{mgr, "/history", []string{"bill-ci", "pay-db", "pay-web"}},
		{mgr, "/history?team=billing", []string{"bill-ci"}},
		{mgr, "/history?requester=developer", []string{"pay-db", "pay-web"}},
		{mgr, "/history?template=fedora", []string{"pay-db"}},
		{mgr, "/history?state=failed", []string{"bill-ci"}},
		{mgr, "/history?from=2026-03-03", []string{"bill-ci", "pay-db"}},
		{mgr, "/history?to=2026-03-03", []string{"pay-db", "pay-web"}},
		{mgr, "/history?from=2026-03-03&to=2026-03-03", []string{"pay-db"}},
		{mgr, "/history?q=LOAD+TESTING", []string{"pay-web"}},
		{mgr, "/history?q=pay-&state=running&team=payments", []string{"pay-db"}},
	} {
		status, b := e.fetch(c.who, c.path)
		if status != 200 {
			t.Errorf("%s: status %d", c.path, status)
			continue
		}
		if got := listed(b); !slices.Equal(got, c.want) {
			t.Errorf("%s: listed %v, want %v", c.path, got, c.want)
		}
	}
	// The developer's form has no team choice; the manager's keeps the filters.
	_, b := e.fetch(dev, "/history")
	if strings.Contains(b, `id="team"`) || !strings.Contains(b, "team payments") {
		t.Error("developer's history offers a team choice or does not say whose history it is")
	}
	_, b = e.fetch(mgr, "/history?team=billing&q=ci")
	if !strings.Contains(b, `<option value="billing" selected>`) || !strings.Contains(b, `value="ci"`) {
		t.Error("the form lost the filters")
	}
	if !strings.Contains(b, `href="/history.csv?q=ci&amp;team=billing"`) {
		t.Error("the CSV link does not keep the filters")
	}
	// Bad filters are named.
	for path, field := range map[string]string{
		"/history?team=nope":                     "team",
		"/history?template=nope":                 "template",
		"/history?state=sleeping":                "state",
		"/history?from=2026-13-01":               "from",
		"/history?from=2026-03-05&to=2026-03-01": "to",
		"/history?requester=nobody":              "requester",
		"/history?after=garbage":                 "after",
	} {
		status, b := e.fetch(mgr, path)
		if status != http.StatusUnprocessableEntity || !strings.Contains(b, `data-testid="error-`+field+`"`) && field != "after" ||
			field == "after" && !strings.Contains(b, "damaged") {
			t.Errorf("%s: status %d, no error for %s", path, status, field)
		}
	}
	// A developer cannot look up another team's requester.
	if status, b := e.fetch(dev, "/history?requester=outsider"); status != 422 || !strings.Contains(b, `data-testid="error-requester"`) {
		t.Errorf("developer filtering by another team's requester: %d", status)
	}
	// The export follows the same rules.
	for who, want := range map[string][]string{"developer": {"pay-db", "pay-web"}, "manager": {"bill-ci", "pay-db", "pay-web"}} {
		recs := e.csv(e.browser(who), "/history.csv?team=billing&q=-")
		var got []string
		for _, r := range recs[1:] {
			got = append(got, r[9])
		}
		if who == "manager" {
			want = []string{"bill-ci"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s export of team billing: %v, want %v", who, got, want)
		}
	}
	// The nav offers History to everyone, Insight to managers and platform.
	if _, b := e.fetch(dev, "/history"); !strings.Contains(b, `data-testid="nav-history"`) || strings.Contains(b, `data-testid="nav-insight"`) {
		t.Error("developer's nav")
	}
	if _, b := e.fetch(mgr, "/history"); !strings.Contains(b, `data-testid="nav-insight"`) {
		t.Error("manager's nav has no Insight")
	}
}

func (e *env) csv(c *http.Client, path string) [][]string {
	e.t.Helper()
	resp, err := c.Get(e.url + path)
	if err != nil {
		e.t.Fatal(err)
	}
	b := body(e.t, resp)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		e.t.Fatalf("%s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	recs, err := csv.NewReader(strings.NewReader(b)).ReadAll()
	if err != nil || len(recs) == 0 || recs[0][0] != "id" {
		e.t.Fatalf("%s: not CSV with a header: %v %q", path, err, b)
	}
	return recs
}

func TestHistoryPagesFollowNextLinks(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	// 120 requests, in clumps made in the same microsecond, and others of
	// another team in between.
	var want []string
	for i := range 120 {
		name := fmt.Sprintf("vm-%03d", i)
		e.histRow("payments", "developer", "ubuntu-2404", name, "", store.StateDeleted, t0.Add(time.Duration(i/7)*time.Minute))
		e.histRow("billing", "outsider", "ubuntu-2404", fmt.Sprintf("other-%03d", i), "", store.StateDeleted, t0.Add(time.Duration(i/7)*time.Minute))
		want = append(want, name)
	}
	slices.Reverse(want)
	mgr := e.browser("manager")
	var got []string
	path, pages := "/history?team=payments", 0
	for path != "" {
		status, b := e.fetch(mgr, path)
		if status != 200 {
			t.Fatalf("%s: %d", path, status)
		}
		pages++
		got = append(got, listed(b)...)
		if pages > 1 && !strings.Contains(b, `data-testid="history-first"`) {
			t.Errorf("page %d has no link to the newest", pages)
		}
		path = ""
		if m := regexp.MustCompile(`href="(/history\?[^"]+)" data-testid="history-next"`).FindStringSubmatch(b); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
			if !strings.Contains(path, "team=payments") {
				t.Fatalf("next link lost the filter: %s", path)
			}
		}
	}
	// Tied names sort by id, newest first, the same as the names here.
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("%d pages listed %d requests:\n%v\nwant\n%v", pages, len(got), got, want)
	}
}

func TestHistoryCSVDefusesFormulasAndStreamsEveryRow(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	cells := []string{"=1+2", "+SUM(A1:A9)", "-2+3", "@cmd", "\tHIDDEN", "\rCR", "plain, \"quoted\"\nand a second line", "safe = 1"}
	for i, j := range cells {
		e.histRow("payments", "developer", "ubuntu-2404", fmt.Sprintf("x-%d", i), j, store.StateRunning, t0.Add(time.Duration(i)*time.Second))
	}
	recs := e.csv(e.browser("manager"), "/history.csv?state=running")
	if len(recs) != len(cells)+1 {
		t.Fatalf("%d records", len(recs))
	}
	head := recs[0]
	col := slices.Index(head, "justification")
	if col < 0 || !slices.Equal(head[:4], []string{"id", "created_at", "team", "requester"}) {
		t.Fatalf("header %v", head)
	}
	// Newest first: the last cell is in the first row.
	for i, r := range recs[1:] {
		in := cells[len(cells)-1-i]
		want := in
		if strings.ContainsAny(in[:1], "=+-@\t\r") {
			want = "'" + in
		}
		if r[col] != want {
			t.Errorf("justification %q exported as %q, want %q", in, r[col], want)
		}
		if r[2] != "payments" || r[11] != "running" {
			t.Errorf("row %v", r)
		}
	}
	// More rows than one flush and one fetch of the database cursor.
	_, err := e.st.Pool().Exec(context.Background(), `
		INSERT INTO requests (team_id, requester_id, template_id, template_version, size, vcpu, memory_mib, name,
			ssh_public_key, lease_days, state, created_at, expires_at)
		SELECT r.team_id, r.requester_id, r.template_id, r.template_version, 'small', 1, 2048, 'bulk-' || i, 'k', 7,
		       'deleted', $1::timestamptz - i * interval '1 second', $1::timestamptz
		FROM generate_series(1, 2345) i, (SELECT * FROM requests LIMIT 1) r`, t0)
	if err != nil {
		t.Fatal(err)
	}
	recs = e.csv(e.browser("developer"), "/history.csv")
	if len(recs) != 2345+len(cells)+1 {
		t.Errorf("full export: %d records", len(recs)-1)
	}
	// A bad filter is an error page, not a file.
	resp, err := e.browser("manager").Get(e.url + "/history.csv?from=yesterday")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != 422 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(b, "from") {
		t.Errorf("bad filter: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestInsightPage(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	for _, who := range []string{"developer", "outsider"} {
		if status, _ := e.fetch(e.browser(who), "/insight"); status != http.StatusForbidden {
			t.Errorf("%s: %d", who, status)
		}
	}
	mgr := e.browser("manager")
	status, b := e.fetch(mgr, "/insight")
	if status != 200 || !strings.Contains(b, "have not been computed yet") {
		t.Fatalf("before the first refresh: %d", status)
	}
	// A request that ran 2 min 30 s after it was made, another that failed.
	now := time.Now().UTC()
	created := now.Add(-time.Hour).Truncate(time.Second)
	if store.WeekOf(created) != store.WeekOf(now) {
		created = store.WeekOf(now).Add(time.Second)
	}
	ran := e.histRow("payments", "developer", "ubuntu-2404", "ran", "", store.StateRunning, created)
	failed := e.histRow("billing", "outsider", "fedora", "broke", "", store.StateFailed, created)
	ev := func(id int64, at time.Time, kind string, from, to store.State, reason string) {
		if _, err := e.st.Pool().Exec(context.Background(), `INSERT INTO events (request_id, at, actor, kind, from_state, to_state, reason)
			VALUES ($1, $2, 'test', $3, $4, $5, $6)`, id, at, kind, from, to, reason); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []int64{ran, failed} {
		ev(id, created, "submitted", "", store.StatePendingApproval, "")
		ev(id, created, "decision", store.StatePendingApproval, store.StateApproved, "auto-approved")
		ev(id, created.Add(time.Second), "vm_created", store.StateApproved, store.StateProvisioning, "")
	}
	ev(ran, created.Add(150*time.Second), "state", store.StateProvisioning, store.StateRunning, "")
	ev(failed, created.Add(time.Minute), "state", store.StateProvisioning, store.StateFailed, "No node can run this VM. Try a smaller size.")
	// The figures are taken after the last event: in the first minutes of
	// a week the events above lie after now.
	at := now.Truncate(time.Minute)
	if last := created.Add(150 * time.Second); at.Before(last) {
		at = last.Truncate(time.Minute).Add(time.Minute)
	}
	if _, err := e.st.RefreshInsight(context.Background(), at); err != nil {
		t.Fatal(err)
	}
	status, b = e.fetch(mgr, "/insight")
	if status != 200 {
		t.Fatalf("insight: %d", status)
	}
	for _, want := range []string{
		"Figures as of " + at.Format("2006-01-02 15:04") + " UTC",
		`<svg viewBox=`, `role="img"`, `data-testid="chart-lead"`, `data-testid="table-lead"`,
		`data-testid="chart-failures"`, "No node can run this VM", `data-testid="insight-teams"`,
		`data-testid="insight-templates"`, `data-testid="chart-vcpu"`, "2 min 30 s",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("insight page lacks %q", want)
		}
	}
	if !regexp.MustCompile(`data-testid="tile-requests"><dt>Requests</dt><dd><strong>2</strong>`).MatchString(b) {
		t.Error("the requests tile does not say 2")
	}
	// One team: no per-team breakdown.
	status, b = e.fetch(mgr, "/insight?team=payments&weeks=4")
	if status != 200 || strings.Contains(b, `data-testid="insight-teams"`) || strings.Contains(b, "No node can run") {
		t.Errorf("one team: %d", status)
	}
	for path, field := range map[string]string{"/insight?weeks=5": "weeks", "/insight?team=nope": "team", "/insight?template=nope": "template"} {
		if status, b := e.fetch(mgr, path); status != 422 || !strings.Contains(b, `data-testid="error-`+field+`"`) {
			t.Errorf("%s: %d", path, status)
		}
	}
}

func TestRequestTimelineShowsStepDurations(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	id := e.histRow("payments", "developer", "centos-stream9", "slow", "", store.StateApproved, t0)
	for _, ev := range []struct {
		at       time.Duration
		kind     string
		from, to store.State
		actor    string
	}{
		{0, "submitted", "", store.StatePendingApproval, "developer"},
		{10 * time.Millisecond, "decision", store.StatePendingApproval, store.StatePendingApproval, "policy"},
		{2*time.Hour + 13*time.Minute, "approval", store.StatePendingApproval, store.StateApproved, "manager"},
	} {
		if _, err := e.st.Pool().Exec(context.Background(), `INSERT INTO events (request_id, at, actor, kind, from_state, to_state, reason)
			VALUES ($1, $2, $3, $4, $5, $6, '')`, id, t0.Add(ev.at), ev.actor, ev.kind, ev.from, ev.to); err != nil {
			t.Fatal(err)
		}
	}
	status, b := e.fetch(e.browser("developer"), fmt.Sprintf("/requests/%d", id))
	if status != 200 {
		t.Fatalf("request page: %d", status)
	}
	for _, want := range []string{"after 10 ms", "after 2 h 13 min, 2 h 13 min after the request",
		`<strong>Approved</strong> <span class="muted">by manager</span>`} {
		if !strings.Contains(b, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
}
