package web_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/web"
)

// TestHistoryPagesLeadBothWays pages through 120 requests in a real
// database, 50 at a time: Older to the end, then Newer back to the first
// page, which has no Newer link; each page shows the same rows both ways.
func TestHistoryPagesLeadBothWays(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	for i := range 120 {
		e.grSubmit("developer", "ubuntu-2404", "small", "h-"+strconv.Itoa(i))
	}
	c := e.browser("manager")
	link := func(b, id string) string {
		m := regexp.MustCompile(`href="([^"]+)" data-testid="` + id + `"`).FindStringSubmatch(b)
		if m == nil {
			return ""
		}
		return strings.ReplaceAll(m[1], "&amp;", "&")
	}
	rows := func(b string) string {
		var ids []string
		for _, m := range regexp.MustCompile(`data-testid="history-(\d+)"`).FindAllStringSubmatch(b, -1) {
			ids = append(ids, m[1])
		}
		return strings.Join(ids, ",")
	}
	var pages []string
	_, b := e.grGet(c, "/history?team=payments")
	if link(b, "history-newer") != "" {
		t.Error("the first page links to newer rows")
	}
	pages = append(pages, b)
	for link(b, "history-next") != "" {
		_, b = e.grGet(c, link(b, "history-next"))
		if link(b, "history-newer") == "" {
			t.Fatalf("page %d has no Newer link", len(pages)+1)
		}
		pages = append(pages, b)
	}
	if len(pages) != 3 || strings.Count(rows(pages[2]), ",") != 19 {
		t.Fatalf("%d pages, the last with %q", len(pages), rows(pages[len(pages)-1]))
	}
	for i := 2; i > 0; i-- {
		_, b = e.grGet(c, link(b, "history-newer"))
		if rows(b) != rows(pages[i-1]) {
			t.Errorf("Newer from page %d does not show page %d again", i+1, i)
		}
		if !strings.Contains(link(b, "history-next"), "after=") {
			t.Errorf("page %d, reached by Newer, has no Older link", i)
		}
	}
	if link(b, "history-newer") != "" {
		t.Error("the first page, reached by Newer, links to newer rows")
	}
}
