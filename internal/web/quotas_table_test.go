package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/web"
)

// TestQuotasPageIsOneTableOverQuotaFirst renders the quotas page against a
// real database: one table row per team, each resource as use against limit
// with a meter, the team over its quota first whatever its name, and one
// team's form opened from its row's Edit link.
func TestQuotasPageIsOneTableOverQuotaFirst(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	// billing uses 1 vCPU (a small VM) and is then limited to none: over.
	e.grSubmit("outsider", "ubuntu-2404", "small", "big")
	e.grQuota("billing", store.Quota{VCPU: grInt(0)})
	e.grQuota("payments", store.Quota{VCPU: grInt(16), MemoryMiB: grInt(32 * 1024)})
	if _, err := e.st.EnsureTeam(ctx, "aardvark", "aardvark"); err != nil {
		t.Fatal(err)
	}
	c := e.browser("platform")
	status, b := e.grGet(c, "/platform/quotas")
	if status != http.StatusOK {
		t.Fatalf("quotas page: %d", status)
	}
	if n := strings.Count(b, `<table class="quotas"`); n != 1 {
		t.Fatalf("%d quota tables, want 1", n)
	}
	if strings.Contains(b, `class="quota-form"`) {
		t.Error("a quota form is open before any Edit was clicked")
	}
	var order []string
	for _, m := range regexp.MustCompile(`data-testid="quota-team-([a-z]+)"`).FindAllStringSubmatch(b, -1) {
		order = append(order, m[1])
	}
	if strings.Join(order, ",") != "billing,aardvark,payments" {
		t.Errorf("rows in order %v, want billing (over quota) first, then by name", order)
	}
	if !strings.Contains(b, `data-testid="over-count"><strong>1 team is over quota</strong>`) {
		t.Error("the page does not say how many teams are over quota")
	}
	cell := func(id string) string {
		return regexp.MustCompile(`(?s)data-testid="` + id + `">.*?</td>`).FindString(b)
	}
	if c := cell("quota-billing-vCPU"); !strings.Contains(c, `<meter min="0" max="1"`) || !strings.Contains(c, "1 of 0") || !strings.Contains(c, "over the limit") {
		t.Errorf("billing's vCPU cell does not show 2 of 1 as over: %s", c)
	}
	if c := cell("quota-payments-memory"); !strings.Contains(c, `max="32768"`) || !strings.Contains(c, "0 GiB of 32 GiB") || strings.Contains(c, "over the limit") {
		t.Errorf("payments' memory cell: %s", c)
	}
	if c := cell("quota-payments-VMs"); strings.Contains(c, "<meter") || !strings.Contains(c, "0, no limit") {
		t.Errorf("an unlimited resource has a meter or no words: %s", c)
	}

	// Edit opens the team's form above the table; saving comes back to the table.
	id := strconv.FormatInt(e.teams["payments"].ID, 10)
	if !strings.Contains(b, `href="/platform/quotas?edit=`+id+`#quota-edit"`) {
		t.Fatal("no Edit link for payments")
	}
	_, b = e.grGet(c, "/platform/quotas?edit="+id)
	if !strings.Contains(b, `data-testid="quota-edit-payments"`) || !strings.Contains(b, `value="32"`) || strings.Count(b, `class="quota-form"`) != 1 {
		t.Error("Edit does not open payments' form, alone, with its limits")
	}
	resp, _ := e.grPost(c, "/platform/quotas/"+id, url.Values{"vcpu": {"16"}, "memoryGiB": {"64"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/platform/quotas?saved=payments" {
		t.Fatalf("save: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, b = e.grGet(c, "/platform/quotas?saved=payments")
	if !strings.Contains(cell("quota-payments-memory"), "0 GiB of 64 GiB") || strings.Contains(b, `class="quota-form"`) {
		t.Error("after saving, the table does not show the new limit, or the form stays open")
	}
}
