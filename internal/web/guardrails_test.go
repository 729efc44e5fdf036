package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"paddock/internal/store"
	"paddock/internal/web"
)

func (e *env) grQuota(team string, q store.Quota) {
	e.t.Helper()
	q.TeamID = e.teams[team].ID
	if err := e.st.SetTeamQuota(context.Background(), q, store.Actor{Name: "test"}); err != nil {
		e.t.Fatal(err)
	}
}

func grInt(n int) *int { return &n }

func (e *env) grGet(c *http.Client, path string) (int, string) {
	e.t.Helper()
	resp, err := c.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, body(e.t, resp)
}

func (e *env) grPost(c *http.Client, path string, v url.Values) (*http.Response, string) {
	e.t.Helper()
	resp, err := c.PostForm(e.srv.URL+path, v)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body(e.t, resp)
}

// grSubmit submits a request as the developer of team payments.
func (e *env) grSubmit(login, template, size, name string) store.Request {
	e.t.Helper()
	u := e.users[login]
	r, err := e.st.SubmitRequest(context.Background(), store.NewRequest{TeamID: *u.TeamID, Requester: u, Template: template,
		Size: size, Name: name, SSHPublicKey: sshKey, LeaseDays: 7, Justification: "for the test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func TestQuotaFormShowsUseAndNamesTheBlocker(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	e.grQuota("payments", store.Quota{MemoryMiB: grInt(6 * 1024), VMs: grInt(5)})
	e.grSubmit("developer", "ubuntu-2404", "small", "existing") // 1 vCPU, 2 GiB
	c := e.browser("developer")

	// Before submit: use, what the size adds, and the policy's verdict.
	status, b := e.grGet(c, "/requests/new?template=ubuntu-2404&size=medium")
	if status != 200 || !strings.Contains(b, `data-testid="quota-panel"`) {
		t.Fatalf("form: %d", status)
	}
	memRow := regexp.MustCompile(`(?s)data-testid="quota-memory">.*?</tr>`).FindString(b)
	for _, want := range []string{"2 GiB", "+4 GiB", "6 GiB"} {
		if !strings.Contains(memRow, "<td>"+want+"</td>") {
			t.Errorf("memory row lacks %q: %s", want, memRow)
		}
	}
	if !strings.Contains(b, "Policy: auto-approved: within team quota; template allows auto-approval") {
		t.Error("no policy preview")
	}
	// Sizes that would not fit are marked, with what they would use, before
	// one is picked; those that fit are not.
	if !strings.Contains(b, `data-testid="size-over-large">does not fit the quota: would take the team to memory 10 GiB of 6 GiB`) {
		t.Error("the large size is not marked as over the quota")
	}
	for _, fits := range []string{"small", "medium"} {
		if strings.Contains(b, `data-testid="size-over-`+fits+`"`) {
			t.Errorf("size %s fits but is marked over the quota", fits)
		}
	}
	// A size over the quota is named before submit…
	_, b = e.grGet(c, "/requests/new?template=ubuntu-2404&size=large")
	if !strings.Contains(b, `data-testid="quota-blocker"`) || !strings.Contains(b, "memory 10 GiB of 6 GiB") {
		t.Error("the form does not name the blocker")
	}
	// …with submit disabled, saying why.
	if !strings.Contains(b, `data-testid="submit" disabled aria-describedby="quota-blocker submit-why"`) || !strings.Contains(b, `data-testid="submit-why">Request VM is disabled`) {
		t.Error("submit stays enabled over quota, or does not say why")
	}
	if _, fits := e.grGet(c, "/requests/new?template=ubuntu-2404&size=medium"); strings.Contains(fits, `data-testid="submit" disabled`) {
		t.Error("submit is disabled for a size that fits")
	}
	// …and refused at submit, with nothing stored.
	v := validForm()
	v.Set("size", "large")
	resp, b := e.grPost(c, "/requests", v)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(b, `data-testid="error-quota"`) ||
		!strings.Contains(b, "exceeds the quota of team payments: memory 10 GiB of 6 GiB") {
		t.Errorf("over-quota submit: %d", resp.StatusCode)
	}
	resp, b = e.apiDo(e.token("developer"), "POST", "/api/v1/requests",
		`{"template":"ubuntu-2404","size":"large","name":"big","sshPublicKey":"`+sshKey+`","leaseDays":3}`, nil)
	if resp.StatusCode != 422 || !strings.Contains(b, `"field": "quota"`) || !strings.Contains(b, "memory 10 GiB of 6 GiB") {
		t.Errorf("API over quota: %d %s", resp.StatusCode, b)
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 1 {
		t.Errorf("%d requests stored", n)
	}
}

func TestApprovalQueueDecisionsAndTheLoserIsTold(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	r := e.grSubmit("developer", "centos-stream9", "medium", "golden")
	page := "/requests/" + strconv.FormatInt(r.ID, 10)
	dev, mgr, plat := e.browser("developer"), e.browser("manager"), e.browser("platform")

	_, b := e.grGet(dev, page)
	if !strings.Contains(b, "needs approval: template centos-stream9 requires approval") || !strings.Contains(b, "waiting for approval") {
		t.Error("the request page does not show why it waits")
	}
	if status, _ := e.grGet(dev, "/approvals"); status != http.StatusForbidden {
		t.Errorf("developer opens the queue: %d", status)
	}
	_, b = e.grGet(mgr, "/approvals")
	as, _ := e.st.ApprovalsOf(context.Background(), r.ID)
	id := strconv.FormatInt(as[0].ID, 10)
	if !strings.Contains(b, `data-testid="approval-`+id+`"`) || !strings.Contains(b, "for the test") || !strings.Contains(b, `data-testid="approve"`) {
		t.Fatal("the queue does not offer the request")
	}
	// A rejection without a comment is shown again with the problem.
	resp, b := e.grPost(mgr, "/approvals/"+id+"/reject", url.Values{"comment": {""}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(b, `data-testid="error-comment"`) {
		t.Errorf("reject without comment: %d", resp.StatusCode)
	}
	// Two approvers at once: one wins, the other is told who did.
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	bodies := make([]string, 2)
	for i, c := range []*http.Client{mgr, plat} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.PostForm(e.srv.URL+"/approvals/"+id+"/approve", url.Values{"comment": {"go ahead"}})
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i], bodies[i] = resp.StatusCode, body(t, resp)
		}()
	}
	wg.Wait()
	won, lost := -1, -1
	for i, s := range statuses {
		switch s {
		case http.StatusSeeOther:
			won = i
		case http.StatusConflict:
			lost = i
		}
	}
	if won < 0 || lost < 0 {
		t.Fatalf("statuses %v", statuses)
	}
	winner := []string{"manager", "platform"}[won]
	if !strings.Contains(bodies[lost], "already approved by "+winner+" at ") {
		t.Errorf("the loser reads: %s", bodies[lost])
	}
	_, b = e.grGet(dev, page)
	if !strings.Contains(b, "approved by "+winner) || !strings.Contains(b, "go ahead") {
		t.Error("the request page does not show the approval")
	}
	_, b = e.grGet(mgr, "/approvals?decided="+id)
	if !strings.Contains(b, `data-testid="decided"`) || !strings.Contains(b, `data-testid="queue-empty"`) {
		t.Error("the queue does not confirm the decision")
	}

	// Nobody decides their own request: the platform engineer (team payments) asks.
	own := e.grSubmit("platform", "centos-stream9", "medium", "mine")
	as, _ = e.st.ApprovalsOf(context.Background(), own.ID)
	ownID := strconv.FormatInt(as[0].ID, 10)
	_, b = e.grGet(plat, "/approvals")
	if !strings.Contains(b, `data-testid="own"`) {
		t.Error("the queue offers the platform engineer their own request")
	}
	if resp, _ := e.grPost(plat, "/approvals/"+ownID+"/approve", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("self-approval: %d", resp.StatusCode)
	}
	// The API: list, reject with a comment, and the 409 after.
	tok := e.token("manager")
	resp, b = e.apiDo(tok, "GET", "/api/v1/approvals", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(b, `"request": "mine"`) {
		t.Errorf("API queue: %d %s", resp.StatusCode, b)
	}
	resp, b = e.apiDo(tok, "POST", "/api/v1/approvals/"+ownID+"/reject", `{"comment":"use the shared one"}`, nil)
	if resp.StatusCode != 200 || !strings.Contains(b, `"verdict": "rejected"`) {
		t.Errorf("API reject: %d %s", resp.StatusCode, b)
	}
	resp, b = e.apiDo(tok, "POST", "/api/v1/approvals/"+ownID+"/approve", "", nil)
	if resp.StatusCode != 409 || !strings.Contains(b, "already rejected by manager at ") {
		t.Errorf("API second decision: %d %s", resp.StatusCode, b)
	}
}

func TestLeaseBannerAndOneClickExtend(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	r := e.grSubmit("developer", "ubuntu-2404", "small", "short") // maximum lease 30 days
	page := "/requests/" + strconv.FormatInt(r.ID, 10)
	c := e.browser("developer")
	_, b := e.grGet(c, page)
	if strings.Contains(b, `data-testid="lease-banner"`) || !strings.Contains(b, `data-testid="extend"`) {
		t.Error("a week before expiry: a banner, or no extend button")
	}
	if _, err := e.st.Pool().Exec(ctx, `UPDATE requests SET expires_at = now() + interval '47 hours' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	_, b = e.grGet(c, page)
	if !strings.Contains(b, `data-testid="lease-banner"`) || !strings.Contains(b, "The lease ends in 46 hours") {
		t.Errorf("no banner 2 days before expiry")
	}
	if _, b := e.grGet(e.browser("manager"), page); strings.Contains(b, `data-testid="extend"`) {
		t.Error("a manager is offered the owner's extend button")
	}
	resp, _ := e.grPost(c, page+"/extend", url.Values{"days": {"7"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("extend: %d", resp.StatusCode)
	}
	_, b = e.grGet(c, page)
	if strings.Contains(b, `data-testid="lease-banner"`) || !strings.Contains(b, "lease extended by 7 days to ") {
		t.Error("after extending, the banner stays or the timeline lacks the extension")
	}
	// Beyond the template's maximum: an approval, shown on the page.
	resp, b = e.apiDo(e.token("developer"), "POST", "/api/v1/requests/"+strconv.FormatInt(r.ID, 10)+"/extend", `{"days":30}`, nil)
	var ext struct {
		Extended   bool   `json:"extended"`
		ApprovalID int64  `json:"approvalId"`
		Reason     string `json:"reason"`
	}
	_ = json.Unmarshal([]byte(b), &ext)
	if resp.StatusCode != http.StatusAccepted || ext.Extended || ext.ApprovalID == 0 || !strings.Contains(ext.Reason, "maximum lease of 30 days") {
		t.Fatalf("extension beyond policy: %d %s", resp.StatusCode, b)
	}
	_, b = e.grGet(c, page)
	if !strings.Contains(b, `data-testid="extension-pending"`) || strings.Contains(b, `data-testid="extend"`) {
		t.Error("the page does not show the waiting extension")
	}
	_, b = e.grGet(e.browser("manager"), "/approvals")
	if !strings.Contains(b, "Lease extension by 30 days") {
		t.Error("the extension is not in the queue")
	}
	if resp, b := e.apiDo(e.token("developer"), "POST", "/api/v1/requests/"+strconv.FormatInt(r.ID, 10)+"/extend", `{"days":0}`, nil); resp.StatusCode != 422 || !strings.Contains(b, `"field": "days"`) {
		t.Errorf("0 days: %d %s", resp.StatusCode, b)
	}
	// An expired VM: the banner says when it will be deleted.
	if _, err := e.st.Pool().Exec(ctx, `UPDATE requests SET state = 'expired', expires_at = now() - interval '1 hour' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	_, b = e.grGet(c, page)
	if !strings.Contains(b, "The lease ended 60 minutes ago") || !strings.Contains(b, "will be deleted at") {
		t.Error("no banner on an expired VM")
	}
}

func TestPlatformQuotaRuleAndWebhookPages(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	c := e.browser("platform")
	team := strconv.FormatInt(e.teams["payments"].ID, 10)
	resp, b := e.grPost(c, "/platform/quotas/"+team, url.Values{"vcpu": {"many"}, "memoryGiB": {"32"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(b, `data-testid="error-vcpu"`) || !strings.Contains(b, `value="many"`) {
		t.Errorf("bad quota: %d", resp.StatusCode)
	}
	resp, _ = e.grPost(c, "/platform/quotas/"+team, url.Values{"vcpu": {"8"}, "memoryGiB": {"32"}, "vms": {""}, "diskGiB": {"100"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save quota: %d", resp.StatusCode)
	}
	q, _ := e.st.TeamQuota(ctx, e.teams["payments"].ID)
	if q.VCPU == nil || *q.VCPU != 8 || *q.MemoryMiB != 32*1024 || q.VMs != nil || *q.DiskGiB != 100 {
		t.Errorf("quota = %+v", q)
	}
	_, b = e.grGet(c, "/platform/quotas?saved=payments")
	if !strings.Contains(b, `data-testid="saved"`) || !strings.Contains(b, "0 GiB of 32 GiB") {
		t.Error("the quota page does not show the saved quota")
	}
	if n := e.count(`SELECT count(*) FROM audit_log WHERE action = 'quota_change' AND actor = 'platform'`); n != 1 {
		t.Errorf("%d quota changes audited", n)
	}

	resp, b = e.grPost(c, "/platform/rules", url.Values{"template": {"ubuntu-2404"}, "maxSize": {"jumbo"}, "autoApprove": {"on"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(b, `data-testid="error-maxSize"`) {
		t.Errorf("bad rule: %d", resp.StatusCode)
	}
	resp, _ = e.grPost(c, "/platform/rules", url.Values{"team": {"payments"}, "maxSize": {"small"}, "autoApprove": {"on"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save rule: %d", resp.StatusCode)
	}
	_, b = e.grGet(c, "/platform/rules")
	if !strings.Contains(b, `data-testid="rules"`) || !strings.Contains(b, "team: payments") || !strings.Contains(b, "maxSize: small") {
		t.Error("the rules page does not list the rule as a table and YAML")
	}
	// The rule applies at once.
	r := e.grSubmit("developer", "ubuntu-2404", "medium", "ruled")
	if r.State != store.StatePendingApproval || r.Decision != "needs approval: size medium exceeds the team's auto-approve limit small" {
		t.Errorf("after the rule: %s %q", r.State, r.Decision)
	}
	rules, _ := e.st.ApprovalRules(ctx)
	if resp, _ := e.grPost(c, fmt.Sprintf("/platform/rules/%d/delete", rules[0].ID), nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("delete rule: %d", resp.StatusCode)
	}

	// Failed deliveries are listed for the platform team.
	var nid int64
	if err := e.st.Pool().QueryRow(ctx, `INSERT INTO notifications (kind, request_id, text) VALUES ('vm_ready', $1, 'The VM is running.') RETURNING id`, r.ID).Scan(&nid); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RecordDelivery(ctx, nid, "hooks.example #abcd", 500, "HTTP 500: boom", true); err != nil {
		t.Fatal(err)
	}
	_, b = e.grGet(c, "/platform/webhooks")
	if !strings.Contains(b, `data-testid="deliveries"`) || !strings.Contains(b, "HTTP 500: boom") || !strings.Contains(b, "1 failed") {
		t.Error("the webhooks page does not list the failure")
	}
	// Navigation per role.
	for login, want := range map[string][]bool{"developer": {false, false}, "manager": {true, false}, "platform": {true, true}} {
		_, b := e.grGet(e.browser(login), "/catalog")
		got := []bool{strings.Contains(b, `data-testid="nav-approvals"`), strings.Contains(b, `data-testid="nav-guardrails"`)}
		if got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s nav: approvals %v, guardrails %v", login, got[0], got[1])
		}
	}
}

func TestWebhooksPageSaysWhenNoneIsConfigured(t *testing.T) {
	for _, c := range []struct {
		configured bool
		want       string
	}{
		{false, `data-testid="no-webhooks"`},
		{true, `data-testid="no-failures"`},
	} {
		t.Run(fmt.Sprint("configured=", c.configured), func(t *testing.T) {
			e := setup(t, web.Config{DevSignIn: true, Webhooks: c.configured})
			_, b := e.grGet(e.browser("platform"), "/platform/webhooks")
			if !strings.Contains(b, c.want) {
				t.Errorf("the page lacks %s", c.want)
			}
		})
	}
}
