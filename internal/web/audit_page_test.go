package web_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
	"paddock/internal/web"
)

// TestAuditLogReadsAsWordsWithLinksAndDates renders the audit log from a
// real database: actions in words, details as pairs rather than JSON,
// targets as links, a date filter that refuses what is not a date, and
// pages that lead both ways.
func TestAuditLogReadsAsWordsWithLinksAndDates(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	actor := store.UserActor(e.users["platform"])
	if err := e.st.Audit(ctx, nil, actor, "quota_change", "team:payments", map[string]any{"vcpu": 8, "memory_mib": nil, "over_now": true, "blockers": []any{"vCPU 9 of 8"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Audit(ctx, nil, actor, store.AuditVMAction, store.RequestTarget(42), map[string]any{"action": "stop"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Audit(ctx, nil, actor, store.AuditTemplateChange, store.TemplateTarget("ubuntu-2404"), nil); err != nil {
		t.Fatal(err)
	}
	c := e.browser("manager")
	status, b := e.grGet(c, "/audit")
	if status != http.StatusOK {
		t.Fatalf("audit: %d", status)
	}
	for _, want := range []string{
		`<td title="quota_change">Quota changed</td>`,
		`<option value="vm_action">VM action</option>`,
		`<dt>blockers</dt><dd>vCPU 9 of 8</dd>`, `<dt>memory mib</dt><dd>—</dd>`, `<dt>over now</dt><dd>yes</dd>`, `<dt>vcpu</dt><dd>8</dd>`,
		`<a href="/requests/42" data-testid="audit-target">request:42</a>`,
		`<a href="/catalog/ubuntu-2404" data-testid="audit-target">template:ubuntu-2404</a>`,
		`<a href="/audit?target=team%3Apayments" data-testid="audit-target">team:payments</a>`,
		`<a href="/audit?actor=platform">platform</a>`,
		`<input type="date" id="from" name="from"`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("the audit page lacks %s", want)
		}
	}
	if strings.Contains(b, `&#34;vcpu&#34;`) || strings.Contains(b, `"vcpu":8`) {
		t.Error("details are still shown as JSON")
	}

	// Dates: today's entries are in, yesterday's filter finds none, and a
	// date that is not one is refused next to its field.
	today := time.Now().UTC().Format(time.DateOnly)
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	if _, b := e.grGet(c, "/audit?from="+today+"&to="+today+"&action=quota_change"); !strings.Contains(b, "Quota changed</td>") {
		t.Error("today's entry is not found by a filter of today")
	}
	if _, b := e.grGet(c, "/audit?to="+yesterday); !strings.Contains(b, `data-testid="audit-empty"`) {
		t.Error("entries of today are found up to yesterday")
	}
	status, b = e.grGet(c, "/audit?from=31.12.2025")
	if status != http.StatusUnprocessableEntity || !strings.Contains(b, `data-testid="error-from">must be a date like 2026-03-31`) || !strings.Contains(b, `href="#from"`) {
		t.Errorf("a bad date: %d", status)
	}
	status, _ = e.grGet(c, "/audit?from="+today+"&to="+yesterday)
	if status != http.StatusUnprocessableEntity {
		t.Errorf("To before From: %d", status)
	}

	// 250 more entries: three pages. The first has only Older, the middle
	// both, and Newer from the last leads back to the same middle page.
	for i := range 250 {
		if err := e.st.Audit(ctx, nil, actor, "paging_test", "item:"+strconv.Itoa(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	link := func(b, id string) string {
		m := regexp.MustCompile(`href="([^"]+)" data-testid="` + id + `"`).FindStringSubmatch(b)
		if m == nil {
			return ""
		}
		return strings.ReplaceAll(m[1], "&amp;", "&")
	}
	rows := func(b string) []string {
		var ids []string
		for _, m := range regexp.MustCompile(`data-testid="audit-(\d+)"`).FindAllStringSubmatch(b, -1) {
			ids = append(ids, m[1])
		}
		return ids
	}
	_, first := e.grGet(c, "/audit?action=paging_test")
	if link(first, "audit-newer") != "" || link(first, "audit-next") == "" || len(rows(first)) != 100 {
		t.Fatalf("first page: newer %q, older %q, %d rows", link(first, "audit-newer"), link(first, "audit-next"), len(rows(first)))
	}
	_, middle := e.grGet(c, link(first, "audit-next"))
	if link(middle, "audit-newer") == "" || link(middle, "audit-next") == "" {
		t.Fatal("the middle page lacks a link")
	}
	_, last := e.grGet(c, link(middle, "audit-next"))
	if link(last, "audit-next") != "" || len(rows(last)) != 50 {
		t.Errorf("last page: older %q, %d rows", link(last, "audit-next"), len(rows(last)))
	}
	_, back := e.grGet(c, link(last, "audit-newer"))
	if strings.Join(rows(back), ",") != strings.Join(rows(middle), ",") {
		t.Error("Newer from the last page does not show the middle page again")
	}
	_, back = e.grGet(c, link(back, "audit-newer"))
	if strings.Join(rows(back), ",") != strings.Join(rows(first), ",") || link(back, "audit-newer") != "" {
		t.Error("Newer twice does not come back to the first page, without a Newer link")
	}
}
