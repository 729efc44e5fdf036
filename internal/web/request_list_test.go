package web_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/web"
)

// TestVMListFiltersSortsPagesAndShowsPoolIPs lists requests from a real
// database: the state and "only mine" filters, sorting on a column both
// ways, previous and next pages with the total, and a pool's member
// addresses in its IP column.
func TestVMListFiltersSortsPagesAndShowsPoolIPs(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	e.poolRunning("herd", 2)
	for i := range 55 {
		e.grSubmit("platform", "centos-stream9", "medium", "wait-"+strconv.Itoa(i)) // waits for approval
	}
	e.grSubmit("developer", "ubuntu-2404", "small", "bravo")
	e.grSubmit("developer", "ubuntu-2404", "small", "alpha")
	c := e.browser("platform")
	names := func(b string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`data-testid="request-row-([a-z0-9-]+)"`).FindAllStringSubmatch(b, -1) {
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

	_, b := e.grGet(c, "/requests")
	if !strings.Contains(b, `data-testid="requests-count">1–50 of 58 requests`) {
		t.Errorf("no total on the first page")
	}
	if got := names(b); len(got) != 50 || got[0] != "alpha" {
		t.Errorf("first page: %d rows, first %v; want 50, newest (alpha) first", len(got), got[:min(1, len(got))])
	}
	if link(b, "requests-prev") != "" || link(b, "requests-next") != "/requests?page=2" {
		t.Errorf("first page links: prev %q, next %q", link(b, "requests-prev"), link(b, "requests-next"))
	}
	_, b2 := e.grGet(c, "/requests?page=2")
	if len(names(b2)) != 8 || link(b2, "requests-prev") != "/requests" || link(b2, "requests-next") != "" || !strings.Contains(b2, "51–58 of 58 requests") {
		t.Errorf("second page: %d rows, prev %q, next %q", len(names(b2)), link(b2, "requests-prev"), link(b2, "requests-next"))
	}

	// Mine: the developer's own three; by state: the pool alone runs.
	_, b = e.grGet(e.browser("developer"), "/requests?mine=1&sort=name&dir=asc")
	if got := strings.Join(names(b), ","); got != "alpha,bravo,herd" {
		t.Errorf("mine, by name: %s", got)
	}
	if !strings.Contains(b, `aria-sort="ascending"><a href="/requests?dir=&amp;mine=1&amp;sort=name"`) && !strings.Contains(b, `aria-sort="ascending"><a href="/requests?mine=1&amp;sort=name"`) {
		t.Error("the Name header is not marked ascending, or does not reverse the sort")
	}
	_, b = e.grGet(c, "/requests?state=running")
	if got := names(b); len(got) != 1 || got[0] != "herd" {
		t.Errorf("running: %v", got)
	}
	ip := regexp.MustCompile(`(?s)data-testid="request-row-herd">.*?data-testid="ip">(.*?)</td>`).FindStringSubmatch(b)
	if ip == nil || !strings.Contains(ip[1], "10.0.0.1") || !strings.Contains(ip[1], "10.0.0.2") {
		t.Errorf("the pool's IP cell does not list its members: %v", ip)
	}
	_, b = e.grGet(c, "/requests?state=rejected")
	if !strings.Contains(b, `data-testid="requests-none"`) {
		t.Error("an empty filter does not say so")
	}
}

// TestVMListCountsOnlyAsFarAsIsCheap: a team with a long history is not
// counted whole on every page view; past store.RequestCountCap the list
// says "more than" and still leads to the next page.
func TestVMListCountsOnlyAsFarAsIsCheap(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	r := e.grSubmit("developer", "ubuntu-2404", "small", "seed")
	// The team's history: rejected requests with the same columns.
	if _, err := e.st.Pool().Exec(context.Background(), `
		INSERT INTO requests (team_id, requester_id, template_id, template_version, size, vcpu, memory_mib, name,
			ssh_public_key, lease_days, justification, state, decision, desired, created_at, updated_at, expires_at)
		SELECT team_id, requester_id, template_id, template_version, size, vcpu, memory_mib, name || '-' || g,
			ssh_public_key, lease_days, justification, 'rejected', decision, 'deleted', created_at, updated_at, expires_at
		FROM requests, generate_series(1, $2) g WHERE id = $1`, r.ID, store.RequestCountCap+5); err != nil {
		t.Fatal(err)
	}
	_, b := e.grGet(e.browser("developer"), "/requests")
	want := fmt.Sprintf(`data-testid="requests-count">1–50 of more than %d requests`, store.RequestCountCap)
	if !strings.Contains(b, want) {
		t.Errorf("no capped total %q", want)
	}
	if !strings.Contains(b, `href="/requests?page=2" data-testid="requests-next"`) {
		t.Error("no next page")
	}
	_, last := e.grGet(e.browser("developer"), fmt.Sprintf("/requests?page=%d", (store.RequestCountCap+6+49)/50))
	if strings.Contains(last, `data-testid="requests-next"`) || !strings.Contains(last, `data-testid="requests-prev"`) {
		t.Error("the last page leads further, or not back")
	}
}
