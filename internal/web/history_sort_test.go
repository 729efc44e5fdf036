package web_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
	"paddock/internal/web"
)

// TestHistorySortsOnItsColumnsAndCounts lists 60 requests of a real
// database sorted on name, team and time, each both ways, 50 to a page:
// every page holds the rows the order puts there, Next and Previous lead
// through them and back, the filters keep the sort, and the total is
// counted, up to store.RequestCountCap.
func TestHistorySortsOnItsColumnsAndCounts(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	type row struct {
		id         int64
		name, team string
		at         time.Time
	}
	var all []row
	for i := range 60 {
		team, login := "payments", "developer"
		if i%2 == 1 {
			team, login = "billing", "outsider"
		}
		r := row{name: fmt.Sprintf("s-%02d", i*37%60), team: team, at: t0.Add(time.Duration(i) * time.Minute)}
		r.id = e.histRow(team, login, "ubuntu-2404", r.name, "", store.StateRunning, r.at)
		all = append(all, r)
	}
	newestFirst := func(a, b row) int { return b.at.Compare(a.at) }
	orders := map[string]func(a, b row) int{
		"sort=name&dir=asc": func(a, b row) int { return strings.Compare(a.name, b.name) },
		"sort=name":         func(a, b row) int { return strings.Compare(b.name, a.name) },
		"sort=team&dir=asc": func(a, b row) int {
			if c := strings.Compare(a.team, b.team); c != 0 {
				return c
			}
			return newestFirst(a, b)
		},
		"sort=team": func(a, b row) int {
			if c := strings.Compare(b.team, a.team); c != 0 {
				return c
			}
			return newestFirst(a, b)
		},
		"":        newestFirst,
		"dir=asc": func(a, b row) int { return a.at.Compare(b.at) },
	}
	c := e.browser("manager")
	ids := func(b string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`data-testid="history-(\d+)"`).FindAllStringSubmatch(b, -1) {
			out = append(out, m[1])
		}
		return out
	}
	link := func(b, id string) string {
		m := regexp.MustCompile(`href="([^"]+)" data-testid="` + id + `"`).FindStringSubmatch(b)
		if m == nil {
			return ""
		}
		return strings.ReplaceAll(m[1], "&amp;", "&")
	}
	for q, order := range orders {
		want := slices.Clone(all)
		slices.SortStableFunc(want, order)
		var wantIDs []string
		for _, r := range want {
			wantIDs = append(wantIDs, strconv.FormatInt(r.id, 10))
		}
		_, first := e.grGet(c, "/history?"+q)
		if got := ids(first); !slices.Equal(got, wantIDs[:50]) {
			t.Errorf("%q: the first page lists %v, want %v", q, got, wantIDs[:50])
		}
		if !strings.Contains(first, "60 requests match.") {
			t.Errorf("%q: the page does not count 60 requests", q)
		}
		next := link(first, "history-next")
		if next == "" {
			t.Errorf("%q: no link to the next page", q)
			continue
		}
		_, second := e.grGet(c, next)
		if got := ids(second); !slices.Equal(got, wantIDs[50:]) {
			t.Errorf("%q: the second page lists %v, want %v", q, got, wantIDs[50:])
		}
		if link(second, "history-next") != "" {
			t.Errorf("%q: the last page links further", q)
		}
		_, back := e.grGet(c, link(second, "history-newer"))
		if got := ids(back); !slices.Equal(got, wantIDs[:50]) {
			t.Errorf("%q: back from the second page lists %v, want the first page", q, got)
		}
	}

	// The sorted column says so and its header reverses the order; the
	// filters keep the sort, the CSV export is of the filter alone.
	_, b := e.grGet(c, "/history?sort=name&dir=asc")
	for _, want := range []string{
		`<th scope="col" aria-sort="ascending"><a href="/history?sort=name" data-testid="history-sort-name">Name ▲</a></th>`,
		`<th scope="col" aria-sort="none"><a href="/history?dir=asc&amp;sort=team" data-testid="history-sort-team">Team</a></th>`,
		`<th scope="col" aria-sort="none"><a href="/history" data-testid="history-sort-created">Requested</a></th>`,
		`<input type="hidden" name="sort" value="name">`, `<input type="hidden" name="dir" value="asc">`,
		`href="/history.csv?" data-testid="history-csv"`,
		"Every request of every team, by name (A to Z), newest first within each.",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("sorted on name, the page lacks %s", want)
		}
	}
	// A column it does not sort on lists newest first.
	if _, b := e.grGet(c, "/history?sort=justification"); !strings.Contains(b, `aria-sort="descending"><a href="/history?dir=asc" data-testid="history-sort-created">Requested ▼`) {
		t.Error("an unknown sort column is not the default order")
	}
	// Counting stops at the cap.
	if _, err := e.st.Pool().Exec(context.Background(), `
		INSERT INTO requests (team_id, requester_id, template_id, template_version, size, vcpu, memory_mib, name,
			ssh_public_key, lease_days, justification, state, created_at, updated_at, expires_at)
		SELECT team_id, requester_id, template_id, template_version, size, vcpu, memory_mib, name || '-' || n,
			ssh_public_key, lease_days, justification, 'deleted', created_at, updated_at, expires_at
		FROM requests, generate_series(1, $1) n WHERE id = $2`, store.RequestCountCap, all[0].id); err != nil {
		t.Fatal(err)
	}
	if _, b := e.grGet(c, "/history?sort=state"); !strings.Contains(b, fmt.Sprintf("More than %d requests match.", store.RequestCountCap)) {
		t.Error("a history longer than the cap is not counted as more than it")
	}
}
