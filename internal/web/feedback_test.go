package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/web"
)

// postBack posts a form as c, and when the answer is a redirect follows it
// once: the response is the POST's, the body the page it leads to.
func (e *env) postBack(c *http.Client, path string, v url.Values) (*http.Response, string) {
	e.t.Helper()
	resp, b := e.post(c, path, v)
	if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusSeeOther && loc != "" {
		_, b = e.get(c, loc)
	}
	return resp, b
}

// TestActionsSayWhatIsUnderWay checks the feedback after a day-2 action on
// a real PostgreSQL, with no worker running, so the request stays where the
// action left it: asked to stop, the cluster not caught up yet.
func TestActionsSayWhatIsUnderWay(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	r := e.cattleRunning("feedback")
	path := "/requests/" + strconv.FormatInt(r.ID, 10)
	owner := e.browser("developer")

	resp, b := e.postBack(owner, path+"/actions/stop", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path {
		t.Fatalf("stop: %d to %q, want 303 to the page", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, want := range []string{
		`role="status" data-testid="flash">Stopping feedback. This page shows when it has stopped.`,
		`data-state="running" data-testid="state">stopping<`,
		`data-testid="action-stop" id="action-stop" disabled aria-describedby="why-stop"`,
		`data-testid="why-stop">Stop: The VM is already stopping.`,
		`data-testid="action-restart" id="action-restart" disabled`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("after stop, the page lacks %s", want)
		}
	}
	// The flash is shown once.
	if _, again := e.get(owner, path); strings.Contains(again, `data-testid="flash"`) {
		t.Error("the flash is shown again on the next visit")
	}
	// The live fragment shows the change under way too.
	if _, live := e.get(owner, path+"/live"); !strings.Contains(live, `data-state="running" data-testid="state">stopping<`) {
		t.Error("the live fragment does not show stopping")
	}

	// A second stop is refused with the reason, next to the actions, and
	// queues nothing.
	actions := func() int {
		return e.count(`SELECT count(*) FROM events WHERE kind = 'action' AND request_id = ` + strconv.FormatInt(r.ID, 10))
	}
	before := actions()
	resp, b = e.postBack(owner, path+"/actions/stop", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(b, `role="alert" tabindex="-1" data-focus data-testid="flash">The VM is already stopping.`) {
		t.Errorf("second stop: %d, or the page does not say it is already stopping", resp.StatusCode)
	}
	if i, j := strings.Index(b, `data-testid="actions"`), strings.Index(b, `data-testid="flash"`); i < 0 || j < i {
		t.Error("the refusal is not shown after the actions")
	}
	if n := actions(); n != before {
		t.Errorf("the second stop was recorded: %d action events, was %d", n, before)
	}
	// The API refuses it too, in its own format.
	if resp, b := e.apiDo(e.token("developer"), "POST", "/api/v1"+path+"/actions/stop", "", nil); resp.StatusCode != http.StatusConflict || !strings.Contains(b, "already stopping") {
		t.Errorf("API second stop: %d %s", resp.StatusCode, b)
	}

	// Once the cluster reports the VM stopped, the state is settled: the
	// page shows stopped and offers Start.
	if _, err := e.st.Transition(context.Background(), r.ID, store.StateStopped, store.ActorCluster, "state", "", store.StateRunning); err != nil {
		t.Fatal(err)
	}
	_, b = e.get(owner, path)
	if !strings.Contains(b, `data-state="stopped" data-testid="state">stopped<`) || !strings.Contains(b, `data-testid="action-start" id="action-start">`) {
		t.Error("a stopped VM does not show stopped with Start enabled")
	}
	resp, b = e.postBack(owner, path+"/actions/start", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(b, `data-state="stopped" data-testid="state">starting<`) || !strings.Contains(b, "Starting feedback.") {
		t.Errorf("start: %d, or the page does not show starting", resp.StatusCode)
	}

	// Delete: the danger area, apart from the other actions; then deleting.
	if i, j := strings.Index(b, `data-testid="danger-zone"`), strings.Index(b, `data-testid="action-delete"`); i < 0 || j < i {
		t.Error("Delete is not in the danger area")
	}
	resp, b = e.postBack(owner, path+"/actions/delete", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(b, `>deleting<`) || !strings.Contains(b, "Deleting feedback and its disks.") ||
		!strings.Contains(b, `data-testid="action-delete" id="action-delete" disabled`) {
		t.Errorf("delete: %d, or the page does not show deleting with Delete disabled", resp.StatusCode)
	}
}

// TestRebuildShowsRebuilding checks that a rebuild reads "rebuilding" until
// the VM runs again, not "approved" or "provisioning".
func TestRebuildShowsRebuilding(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	r := e.cattleRunning("again")
	e.cattleV2()
	path := "/requests/" + strconv.FormatInt(r.ID, 10)
	owner := e.browser("developer")
	resp, b := e.postBack(owner, path+"/rebuild", url.Values{"version": {""}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(b, `data-state="approved" data-testid="state">rebuilding<`) ||
		!strings.Contains(b, "Rebuilding again from v2.") {
		t.Errorf("rebuild: %d, or the page does not show rebuilding", resp.StatusCode)
	}
	ctx := context.Background()
	if _, err := e.st.Transition(ctx, r.ID, store.StateProvisioning, store.ActorProvisioner, "state", "Waiting for KubeVirt", store.StateApproved); err != nil {
		t.Fatal(err)
	}
	if _, b := e.get(owner, path); !strings.Contains(b, `data-state="provisioning" data-testid="state">rebuilding<`) {
		t.Error("a rebuild being provisioned does not show rebuilding")
	}
	if _, err := e.st.Transition(ctx, r.ID, store.StateRunning, store.ActorCluster, "state", "", store.StateProvisioning); err != nil {
		t.Fatal(err)
	}
	if _, b := e.get(owner, path); !strings.Contains(b, `data-state="running" data-testid="state">running<`) {
		t.Error("the rebuilt VM does not show running")
	}
}

// TestFailedVMHasNoLeaseBanner checks that a VM that failed at once is not
// warned that its lease ends, nor offered an extension, and that the
// timeline names the policy's approval once.
func TestFailedVMHasNoLeaseBanner(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	r := e.grSubmit("developer", "cirros", "nano", "short")
	if _, err := e.st.Transition(ctx, r.ID, store.StateFailed, store.ActorProvisioner, "state", "No node can run this VM.", store.StateApproved); err != nil {
		t.Fatal(err)
	}
	// Its lease ends within the hour: a running VM would be warned.
	if _, err := e.st.Pool().Exec(ctx, `UPDATE requests SET expires_at = now() + interval '1 hour' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	_, b := e.get(e.browser("developer"), "/requests/"+strconv.FormatInt(r.ID, 10))
	for _, unwanted := range []string{`data-testid="lease-banner"`, `data-testid="extend"`, "Approved by policy</strong>"} {
		if strings.Contains(b, unwanted) {
			t.Errorf("the failed VM's page has %s", unwanted)
		}
	}
	if !strings.Contains(b, "<strong>Approved</strong> <span class=\"muted\">by policy</span>") {
		t.Error("the timeline does not say Approved by policy once")
	}
}

// TestFormErrorsSummariseAtTheTop checks that a form posted with errors
// comes back with a summary at the top linking to each field, focused on
// load, and with the page's own address for the browser to show.
func TestFormErrorsSummariseAtTheTop(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	team := strconv.FormatInt(e.teams["billing"].ID, 10)
	resp, b := e.post(e.browser("platform"), "/platform/quotas/"+team, url.Values{"vcpu": {"lots"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad quota: %d", resp.StatusCode)
	}
	summary := strings.Index(b, `data-testid="form-errors"`)
	for _, want := range []string{`data-url="/platform/quotas"`, `tabindex="-1" data-focus data-testid="form-errors"`,
		`<a href="#vcpu-` + team + `">vCPU `, `id="vcpu-` + team + `" name="vcpu" value="lots" placeholder="no limit" aria-invalid="true"`} {
		if !strings.Contains(b, want) {
			t.Errorf("the quota page lacks %s", want)
		}
	}
	if first := strings.Index(b, `data-testid="quota-team-`); summary < 0 || first < summary {
		t.Error("the summary is not above the teams")
	}

	f := validForm()
	f.Set("name", "Bad_Name")
	resp, b = e.post(e.browser("developer"), "/requests", f)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(b, `data-url="/requests/new?template=ubuntu-2404"`) ||
		!strings.Contains(b, `<a href="#name">VM name must be`) || !strings.Contains(b, "highlighted field below") {
		i := strings.Index(b, `data-testid="form-errors"`)
		t.Errorf("request form with a bad name: %d, or no summary linking to the name, or no address to show: %.600s", resp.StatusCode, b[max(i-300, 0):])
	}
}

// TestNavigationCountsApprovals checks the count of approvals waiting beside
// "Approvals": what the approver may decide, not their own requests.
func TestNavigationCountsApprovals(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	manager := e.browser("manager")
	if _, b := e.get(manager, "/catalog"); strings.Contains(b, `data-testid="approvals-count"`) {
		t.Error("a count is shown with nothing waiting")
	}
	// centos-stream9 is never approved by policy: two requests wait.
	e.grSubmit("developer", "centos-stream9", "medium", "wait-1")
	e.grSubmit("developer", "centos-stream9", "medium", "wait-2")
	if _, b := e.get(manager, "/catalog"); !strings.Contains(b, `data-testid="approvals-count">2<span class="visually-hidden"> waiting</span>`) {
		i := strings.Index(b, `nav-approvals`)
		t.Errorf("the manager's navigation does not count 2 approvals waiting: %.300s (waiting in the store: %d)", b[max(i, 0):],
			e.count(`SELECT count(*) FROM approvals WHERE verdict IS NULL`))
	}
	// The platform engineer of the same team may decide them too; the
	// developer who asked sees no Approvals link at all.
	if _, b := e.get(e.browser("developer"), "/catalog"); strings.Contains(b, `data-testid="nav-approvals"`) {
		t.Error("the developer is shown the approvals link")
	}
}
