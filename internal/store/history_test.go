package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
)

// hist is a bundle with a second team and requester, and helpers that write
// requests and events with chosen times, as history has them.
type hist struct {
	bundle
	billing store.Team
	biller  store.User
	ubuntu  store.Template
	gated   store.Template
}

func setupHistory(t *testing.T) hist {
	t.Helper()
	b := setup(t)
	ctx := context.Background()
	h := hist{bundle: b}
	var err error
	if h.billing, err = b.st.EnsureTeam(ctx, "billing", "billing"); err != nil {
		t.Fatal(err)
	}
	if h.biller, err = b.st.EnsureUser(ctx, "biller", "Biller", store.RoleDeveloper, &h.billing.ID); err != nil {
		t.Fatal(err)
	}
	if h.ubuntu, err = b.st.TemplateByName(ctx, "ubuntu"); err != nil {
		t.Fatal(err)
	}
	if h.gated, err = b.st.TemplateByName(ctx, "gated"); err != nil {
		t.Fatal(err)
	}
	return h
}

type row struct {
	team         store.Team
	user         store.User
	tpl          store.Template
	name, justif string
	state        store.State
	created      time.Time
	vcpu, memMiB int
}

// insert writes a request row as it would be after its history, without events.
func (h hist) insert(t *testing.T, r row) int64 {
	t.Helper()
	if r.state == "" {
		r.state = store.StateDeleted
	}
	if r.vcpu == 0 {
		r.vcpu, r.memMiB = 1, 2048
	}
	var id int64
	err := h.st.Pool().QueryRow(context.Background(), `
		INSERT INTO requests (team_id, requester_id, template_id, template_version, size, vcpu, memory_mib, name,
			ssh_public_key, lease_days, justification, state, created_at, updated_at, expires_at)
		VALUES ($1, $2, $3, $4, 'small', $5, $6, $7, $8, 7, $9, $10, $11, $11, $11::timestamptz + interval '7 days')
		RETURNING id`, r.team.ID, r.user.ID, r.tpl.ID, r.tpl.Version, r.vcpu, r.memMiB, r.name, sshKey, r.justif,
		r.state, r.created).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func names(rows []store.HistoryRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Name
	}
	return out
}

var day0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func TestHistoryFilters(t *testing.T) {
	h := setupHistory(t)
	ctx := context.Background()
	at := func(d int) time.Time { return day0.AddDate(0, 0, d) }
	for _, r := range []row{
		{team: h.team, user: h.dev, tpl: h.ubuntu, name: "web-1", justif: "Load testing checkout", state: store.StateDeleted, created: at(0)},
		{team: h.team, user: h.dev, tpl: h.gated, name: "db-1", justif: "Migration rehearsal", state: store.StateRejected, created: at(1)},
		{team: h.billing, user: h.biller, tpl: h.ubuntu, name: "ci-runner", justif: "CI for the LEDGER repo", state: store.StateRunning, created: at(2)},
		{team: h.billing, user: h.biller, tpl: h.gated, name: "gpu-box", justif: "100% of a GPU for load testing", state: store.StateFailed, created: at(3)},
		{team: h.team, user: h.dev, tpl: h.ubuntu, name: "web_2", justif: "", state: store.StateRunning, created: at(4)},
		{team: h.billing, user: h.biller, tpl: h.ubuntu, name: "bench", justif: "=cmd|' /C calc'!A0", state: store.StateExpired, created: at(5)},
	} {
		h.insert(t, r)
	}
	cases := []struct {
		name string
		f    store.HistoryFilter
		want []string
	}{
		{"everything, newest first", store.HistoryFilter{}, []string{"bench", "web_2", "gpu-box", "ci-runner", "db-1", "web-1"}},
		{"team", store.HistoryFilter{TeamID: h.billing.ID}, []string{"bench", "gpu-box", "ci-runner"}},
		{"requester", store.HistoryFilter{RequesterID: h.dev.ID}, []string{"web_2", "db-1", "web-1"}},
		{"template", store.HistoryFilter{TemplateID: h.gated.ID}, []string{"gpu-box", "db-1"}},
		{"state", store.HistoryFilter{State: store.StateRunning}, []string{"web_2", "ci-runner"}},
		{"from (inclusive)", store.HistoryFilter{From: at(3)}, []string{"bench", "web_2", "gpu-box"}},
		{"to (exclusive)", store.HistoryFilter{To: at(1)}, []string{"web-1"}},
		{"from and to", store.HistoryFilter{From: at(1), To: at(3)}, []string{"ci-runner", "db-1"}},
		{"text in name", store.HistoryFilter{Q: "runner"}, []string{"ci-runner"}},
		{"text in justification, any case", store.HistoryFilter{Q: "ledger"}, []string{"ci-runner"}},
		{"text in name or justification", store.HistoryFilter{Q: "load testing"}, []string{"gpu-box", "web-1"}},
		{"% is a literal", store.HistoryFilter{Q: "100%"}, []string{"gpu-box"}},
		{"_ is a literal", store.HistoryFilter{Q: "web_"}, []string{"web_2"}},
		{"short text", store.HistoryFilter{Q: "db"}, []string{"db-1"}},
		{"everything at once", store.HistoryFilter{TeamID: h.billing.ID, RequesterID: h.biller.ID, TemplateID: h.ubuntu.ID,
			State: store.StateRunning, From: at(2), To: at(3), Q: "CI"}, []string{"ci-runner"}},
		{"team and state", store.HistoryFilter{TeamID: h.team.ID, State: store.StateRunning}, []string{"web_2"}},
		{"nothing matches", store.HistoryFilter{TeamID: h.team.ID, Q: "ledger"}, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, next, err := rowsOf(h.st.History(ctx, c.f))
			if err != nil {
				t.Fatal(err)
			}
			if got := names(rows); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
			if next != nil {
				t.Errorf("a single page has a next cursor %v", next)
			}
		})
	}
	// The rows carry what the page and the CSV show.
	rows, _, err := rowsOf(h.st.History(ctx, store.HistoryFilter{Q: "gpu-box"}))
	if err != nil || len(rows) != 1 {
		t.Fatalf("gpu-box: %v %v", rows, err)
	}
	r := rows[0]
	if r.TeamName != "billing" || r.RequesterLogin != "biller" || r.TemplateName != "gated" || r.State != store.StateFailed ||
		!r.CreatedAt.Equal(at(3)) || r.Justification != "100% of a GPU for load testing" || r.VCPU != 1 {
		t.Errorf("row %+v", r)
	}
}

func TestHistoryFilterValidation(t *testing.T) {
	h := setupHistory(t)
	for field, f := range map[string]store.HistoryFilter{
		"to":    {From: day0, To: day0},
		"q":     {Q: strings.Repeat("x", store.MaxHistorySearchLen+1)},
		"state": {State: "sleeping"},
	} {
		_, _, err := rowsOf(h.st.History(context.Background(), f))
		var v *store.ValidationError
		if !errors.As(err, &v) || v.For(field) == "" {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// walk pages through f with pages of size n, checking each page's order.
func walk(t *testing.T, st *store.Store, f store.HistoryFilter, n int) ([]int64, int) {
	t.Helper()
	f.Limit = n
	var ids []int64
	pages := 0
	for {
		rows, next, err := rowsOf(st.History(context.Background(), f))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(rows) > n || next != nil && len(rows) != n {
			t.Fatalf("page %d: %d rows, next %v", pages, len(rows), next)
		}
		for _, r := range rows {
			ids = append(ids, r.ID)
		}
		if next == nil {
			return ids, pages
		}
		if last := rows[len(rows)-1]; *next != last.Cursor() {
			t.Fatalf("next cursor %v is not the last row %v", next, last.Cursor())
		}
		f.After = next
		if pages > 100 {
			t.Fatal("paging does not end")
		}
	}
}

func TestHistoryPagingTiesAndLastPage(t *testing.T) {
	h := setupHistory(t)
	// Seven requests made in the same microsecond, between others: pages
	// that end inside the tie must neither lose nor repeat any of them.
	var want []int64
	for i := range 11 {
		created := day0.Add(time.Duration(i) * time.Hour)
		if i >= 2 && i < 9 {
			created = day0.Add(5 * time.Hour)
		}
		want = append(want, h.insert(t, row{team: h.team, user: h.dev, tpl: h.ubuntu, name: fmt.Sprintf("vm-%d", i), created: created}))
	}
	// Newest first; ties by id, highest first.
	slices.Reverse(want)
	for _, n := range []int{1, 2, 3, 4, 7, 11, 12, 50} {
		got, pages := walk(t, h.st, store.HistoryFilter{}, n)
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d: got %v, want %v", n, got, want)
		}
		// A last page that is exactly full has no next page.
		if wantPages := (len(want) + n - 1) / n; pages != wantPages {
			t.Errorf("pages of %d: %d pages, want %d", n, pages, wantPages)
		}
	}
	// Filtered paging through the same ties.
	got, _ := walk(t, h.st, store.HistoryFilter{TeamID: h.team.ID, Q: "vm-"}, 3)
	if !slices.Equal(got, want) {
		t.Errorf("filtered: got %v, want %v", got, want)
	}
	// An empty history is one empty page.
	rows, next, err := rowsOf(h.st.History(context.Background(), store.HistoryFilter{TeamID: h.billing.ID}))
	if err != nil || len(rows) != 0 || next != nil {
		t.Errorf("empty: %v %v %v", rows, next, err)
	}
}

func TestHistoryPagingWhileRowsArriveAndFiltersChange(t *testing.T) {
	h := setupHistory(t)
	ctx := context.Background()
	var all []int64
	for i := range 10 {
		team, user := h.team, h.dev
		if i%2 == 1 {
			team, user = h.billing, h.biller
		}
		all = append(all, h.insert(t, row{team: team, user: user, tpl: h.ubuntu, name: fmt.Sprintf("vm-%d", i),
			created: day0.Add(time.Duration(i) * time.Minute)}))
	}
	slices.Reverse(all) // vm-9 … vm-0
	first, next, err := rowsOf(h.st.History(ctx, store.HistoryFilter{Limit: 4}))
	if err != nil || !slices.Equal(ids(first), all[:4]) || next == nil {
		t.Fatalf("first page: %v %v", ids(first), err)
	}
	// Requests made after the first page was read are newer: they appear on
	// the first page when it is read again, never shift the next pages.
	for i := range 3 {
		h.insert(t, row{team: h.team, user: h.dev, tpl: h.ubuntu, name: fmt.Sprintf("new-%d", i), created: day0.Add(time.Hour)})
	}
	second, _, err := rowsOf(h.st.History(ctx, store.HistoryFilter{Limit: 4, After: next}))
	if err != nil || !slices.Equal(ids(second), all[4:8]) {
		t.Errorf("second page after new rows: %v, want %v", ids(second), all[4:8])
	}
	// With other filters, a cursor continues from the same point in time:
	// the rows older than it that match the new filters, none newer.
	got, _, err := rowsOf(h.st.History(ctx, store.HistoryFilter{TeamID: h.billing.ID, After: next}))
	var want []int64
	for _, id := range all[4:] {
		if idx := slices.Index(all, id); (9-idx)%2 == 1 { // billing made the odd ones
			want = append(want, id)
		}
	}
	if err != nil || !slices.Equal(ids(got), want) {
		t.Errorf("other team from the cursor: %v, want %v", ids(got), want)
	}
	// A cursor past every row gives an empty last page.
	oldest := store.Cursor{CreatedAt: day0, ID: all[len(all)-1]}
	rows, next, err := rowsOf(h.st.History(ctx, store.HistoryFilter{After: &oldest}))
	if err != nil || len(rows) != 0 || next != nil {
		t.Errorf("past the end: %v %v %v", ids(rows), next, err)
	}
}

func ids(rows []store.HistoryRow) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

func TestCursorRoundTrip(t *testing.T) {
	c := store.Cursor{CreatedAt: time.Date(2026, 3, 2, 12, 0, 0, 123456000, time.UTC), ID: 42}
	got, err := store.ParseCursor(c.String())
	if err != nil || got != c {
		t.Errorf("round trip: %v %v", got, err)
	}
	// A history sorted on a column carries the row's value, dots and all.
	c.Key = "web.1 — ünïcode"
	if got, err := store.ParseCursor(c.String()); err != nil || got != c {
		t.Errorf("round trip with a sort value: %v %v", got, err)
	}
	for _, bad := range []string{"", "1", "x.1", "1.x", "1.0", "1.-3", "1.2.3", "1.2.!!"} {
		if _, err := store.ParseCursor(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestExportHistoryStreamsEveryRowInOrder(t *testing.T) {
	h := setupHistory(t)
	ctx := context.Background()
	// More rows than one fetch of the export's cursor.
	_, err := h.st.Pool().Exec(ctx, `
		INSERT INTO requests (team_id, requester_id, template_id, template_version, size, vcpu, memory_mib, name,
			ssh_public_key, lease_days, state, created_at, expires_at)
		SELECT $1, $2, $3, $4, 'small', 1, 2048, 'vm-' || i, 'k', 7, 'deleted',
		       $5::timestamptz + (i / 3) * interval '1 second', $5::timestamptz
		FROM generate_series(1, 2500) i`, h.team.ID, h.dev.ID, h.ubuntu.ID, h.ubuntu.Version, day0)
	if err != nil {
		t.Fatal(err)
	}
	var prev *store.HistoryRow
	n := 0
	err = h.st.ExportHistory(ctx, store.HistoryFilter{Limit: 10}, func(r store.HistoryRow) error {
		if prev != nil && (r.CreatedAt.After(prev.CreatedAt) || r.CreatedAt.Equal(prev.CreatedAt) && r.ID >= prev.ID) {
			t.Fatalf("row %d out of order after %d", r.ID, prev.ID)
		}
		prev = &r
		n++
		return nil
	})
	if err != nil || n != 2500 {
		t.Fatalf("exported %d rows: %v", n, err)
	}
	// Filters apply; an error from the callback stops the export.
	n = 0
	err = h.st.ExportHistory(ctx, store.HistoryFilter{Q: "vm-25"}, func(store.HistoryRow) error { n++; return nil })
	if err != nil || n != 12 { // vm-25, vm-250…vm-259, vm-2500
		t.Errorf("filtered export: %d rows, %v", n, err)
	}
	stop := errors.New("client went away")
	if err := h.st.ExportHistory(ctx, store.HistoryFilter{}, func(store.HistoryRow) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error: %v", err)
	}
}

// Search results page in time order across weeks and years, tied and
// near-tied times included, with date ranges and past the last match.
func TestHistorySearchPagesAcrossTime(t *testing.T) {
	h := setupHistory(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	week := 7 * 24 * time.Hour
	var want []int64
	for i, age := range []time.Duration{
		time.Hour, week - time.Hour, week, week + time.Microsecond,
		3 * week, 4*week + time.Second, 10 * week, 16 * week, 40 * week, 64*week + time.Minute, 100 * week, 200 * week,
	} {
		want = append(want, h.insert(t, row{team: h.team, user: h.dev, tpl: h.ubuntu, name: fmt.Sprintf("findme-%d", i), created: now.Add(-age)}))
		// Rows the search must pass over, at the same times.
		h.insert(t, row{team: h.team, user: h.dev, tpl: h.ubuntu, name: fmt.Sprintf("other-%d", i), created: now.Add(-age)})
	}
	for _, n := range []int{1, 2, 5, 50} {
		got, _ := walk(t, h.st, store.HistoryFilter{Q: "findme"}, n)
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d: %v, want %v", n, got, want)
		}
	}
	// A date range and a search.
	from, to := now.Add(-20*week), now.Add(-2*week)
	got, _ := walk(t, h.st, store.HistoryFilter{Q: "findme", From: from, To: to}, 2)
	if w := want[4:8]; !slices.Equal(got, w) {
		t.Errorf("from %v to %v: %v, want %v", from, to, got, w)
	}
	// Nothing older than the oldest match.
	rows, next, err := rowsOf(h.st.History(ctx, store.HistoryFilter{Q: "findme", After: &store.Cursor{CreatedAt: now.Add(-200 * week), ID: want[11]}}))
	if err != nil || len(rows) != 0 || next != nil {
		t.Errorf("after the oldest: %v %v %v", ids(rows), next, err)
	}
}

// Batches of history copied at once, each with running requests of the
// same teams in another order, all commit: the quota's usage rows are
// locked in team order, where the deferred trigger would lock them in row
// order and deadlock. The usage rows count every copied running request.
func TestCopyHistoryBatchesOverTheSameTeamsDoNotDeadlock(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	search, err := b.st.EnsureTeam(ctx, "search", "search")
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := b.st.TemplateByName(ctx, "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	row := func(id, team int64) []any {
		return []any{id, team, b.dev.ID, tpl.ID, tpl.Version, "small", 1, 2048, fmt.Sprintf("h-%d", id), sshKey, 7, "history",
			"running", "", "", "running", now, now, now.AddDate(0, 0, 7)}
	}
	const rounds, perTeam = 10, 50
	for round := range rounds {
		ids, err := b.st.ReserveRequestIDs(ctx, 4*perTeam)
		if err != nil {
			t.Fatal(err)
		}
		var one, two [][]any
		for i := range perTeam {
			one = append(one, row(ids[i], b.team.ID))
			two = append(two, row(ids[2*perTeam+i], search.ID))
		}
		for i := range perTeam {
			one = append(one, row(ids[perTeam+i], search.ID))
			two = append(two, row(ids[3*perTeam+i], b.team.ID))
		}
		errs := make(chan error, 2)
		for _, rows := range [][][]any{one, two} {
			go func() { errs <- b.st.CopyHistory(ctx, rows, nil) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	for _, team := range []int64{b.team.ID, search.ID} {
		u, err := b.st.TeamUsage(ctx, team)
		if err != nil {
			t.Fatal(err)
		}
		if u.VMs != 2*rounds*perTeam {
			t.Errorf("team %d: usage counts %d VMs, want %d", team, u.VMs, 2*rounds*perTeam)
		}
	}
}

// rowsOf is what History returned before it returned a page: its rows and
// the next page's cursor.
func rowsOf(p store.HistoryPage, err error) ([]store.HistoryRow, *store.Cursor, error) {
	return p.Rows, p.Next, err
}

// TestHistoryPageCarriesDecidersAndTheCountOfItsFilter checks what a page's
// one statement brings beside its rows: each request's first decision and
// the capped count of the filter, its cursor aside, on every page.
func TestHistoryPageCarriesDecidersAndTheCountOfItsFilter(t *testing.T) {
	h := setupHistory(t)
	ctx := context.Background()
	at := func(m int) time.Time { return day0.Add(time.Duration(m) * time.Minute) }
	var ids []int64
	for i := range 5 {
		ids = append(ids, h.insert(t, row{team: h.billing, user: h.biller, tpl: h.ubuntu, name: fmt.Sprintf("b-%d", i), state: store.StateRunning, created: at(i)}))
	}
	h.insert(t, row{team: h.team, user: h.dev, tpl: h.ubuntu, name: "other-team", created: at(10)})
	ev := func(id int64, m int, actor, kind string, from, to store.State, reason string) {
		t.Helper()
		if _, err := h.st.Pool().Exec(ctx, `INSERT INTO events (request_id, at, actor, kind, from_state, to_state, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, at(m), actor, kind, from, to, reason); err != nil {
			t.Fatal(err)
		}
	}
	// b-4 approved by the policy; b-3 rejected by a manager, then approved
	// on a second look (the first decision counts); b-2 approved by a
	// manager; b-1 and b-0 never decided (b-1 only moved on).
	ev(ids[4], 4, "policy", "decision", store.StatePendingApproval, store.StateApproved, "auto-approved: within team quota")
	ev(ids[3], 5, "mgr", "state", store.StatePendingApproval, store.StateRejected, "too big")
	ev(ids[3], 6, "mgr2", "state", store.StatePendingApproval, store.StateApproved, "fine after all")
	ev(ids[2], 7, "mgr", "state", store.StatePendingApproval, store.StateApproved, "")
	ev(ids[1], 8, "system", "state", store.StateApproved, store.StateProvisioning, "")
	decided := func(rows []store.HistoryRow) []string {
		var out []string
		for _, r := range rows {
			if r.Decider == nil {
				out = append(out, r.Name+": -")
				continue
			}
			if r.Decider.RequestID != r.ID {
				t.Errorf("%s: decider of request %d", r.Name, r.Decider.RequestID)
			}
			out = append(out, fmt.Sprintf("%s: %s %s %q", r.Name, r.Decider.Actor, r.Decider.Verdict, r.Decider.Reason))
		}
		return out
	}
	f := store.HistoryFilter{TeamID: h.billing.ID, Limit: 2}
	first, err := h.st.History(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if first.Total != 5 || first.Next == nil || first.Newer {
		t.Fatalf("first page: total %d, next %v, newer %v", first.Total, first.Next, first.Newer)
	}
	want := []string{`b-4: policy approved "auto-approved: within team quota"`, `b-3: mgr rejected "too big"`}
	if got := decided(first.Rows); !slices.Equal(got, want) {
		t.Errorf("first page:\n got %q\nwant %q", got, want)
	}
	if !first.Rows[0].Decider.At.Equal(at(4)) {
		t.Errorf("decided at %s", first.Rows[0].Decider.At)
	}
	f.After = first.Next
	second, err := h.st.History(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{`b-2: mgr approved ""`, "b-1: -"}
	if got := decided(second.Rows); second.Total != 5 || !slices.Equal(got, want) {
		t.Errorf("second page: total %d\n got %q\nwant %q", second.Total, got, want)
	}
	f.After = nil
	newer, err := h.st.HistoryNewer(ctx, f, second.Rows[0].Cursor())
	if err != nil {
		t.Fatal(err)
	}
	if got := decided(newer.Rows); newer.Total != 5 || newer.Newer || !slices.Equal(got, decided(first.Rows)) {
		t.Errorf("newer page: total %d, newer %v, rows %q", newer.Total, newer.Newer, got)
	}
	if p, err := h.st.History(ctx, store.HistoryFilter{TeamID: h.billing.ID, State: store.StateRunning, Q: "b-3"}); err != nil || p.Total != 1 || len(p.Rows) != 1 {
		t.Errorf("searched: total %d, %d rows, %v", p.Total, len(p.Rows), err)
	}
	if p, err := h.st.History(ctx, store.HistoryFilter{Q: "nothing like it"}); err != nil || p.Total != 0 || len(p.Rows) != 0 || p.Next != nil {
		t.Errorf("nothing matches: %+v, %v", p, err)
	}
	// Past the cap the count stops: a total above it means "more than that".
	if _, err := h.st.Pool().Exec(ctx, `INSERT INTO requests (team_id, requester_id, template_id, template_version, size, vcpu,
			memory_mib, name, ssh_public_key, lease_days, state, created_at, updated_at, expires_at)
		SELECT $1, $2, $3, $4, 'small', 1, 2048, 'many-' || g, $5, 7, 'deleted', $6, $6, $6
		FROM generate_series(1, $7::int) g`, h.billing.ID, h.biller.ID, h.ubuntu.ID, h.ubuntu.Version, sshKey, at(-1),
		store.RequestCountCap+10); err != nil {
		t.Fatal(err)
	}
	if p, err := h.st.History(ctx, store.HistoryFilter{TeamID: h.billing.ID}); err != nil || p.Total != store.RequestCountCap+1 {
		t.Errorf("capped: total %d, %v", p.Total, err)
	}
}
