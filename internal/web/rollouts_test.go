package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/web"
)

// TestRolloutPagesPlanStartPauseResumeCancel: the platform engineer sees
// the plan (VMs by batch, pets skipped), starts the rollout, and pauses,
// resumes and cancels it from its page; the page polls itself only while
// the rollout is under way; wrong input is named at the field.
func TestRolloutPagesPlanStartPauseResumeCancel(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	owner := e.browser("developer")
	var ids []int64
	for i := range 4 {
		ids = append(ids, e.cattleRunning(fmt.Sprintf("ro-%d", i)).ID)
	}
	if resp, _ := e.post(owner, "/requests/"+strconv.FormatInt(ids[3], 10)+"/pet", url.Values{"pet": {"true"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pet: %d", resp.StatusCode)
	}
	platform := e.browser("platform")

	// Nothing to roll out before there is a newer version.
	_, b := e.get(platform, "/platform/rollouts/new?template=ubuntu-2404")
	if !strings.Contains(b, "0 VMs to rebuild to v1") || strings.Contains(b, `data-testid="rollout-form"`) {
		t.Errorf("plan with nothing to do offers a rollout:\n%s", b)
	}
	e.cattleV2()
	if _, b := e.get(platform, "/platform/templates/ubuntu-2404"); !strings.Contains(b, `href="/platform/rollouts/new?template=ubuntu-2404" data-testid="roll-out"`) {
		t.Error("the template's page does not offer a rollout to its outdated VMs")
	}
	_, b = e.get(platform, "/platform/rollouts")
	if !strings.Contains(b, `data-testid="nav-rollouts"`) || !strings.Contains(b, `<option value="ubuntu-2404">`) || !strings.Contains(b, "No rollouts yet") {
		t.Errorf("rollouts page:\n%s", b)
	}
	_, b = e.get(platform, "/platform/rollouts/new?template=ubuntu-2404&batchSize=2")
	for _, want := range []string{"3 VMs to rebuild to v2", "In 2 batches of up to 2", `data-testid="candidate-ro-0"`,
		"Skipped: pets", `data-testid="candidate-ro-3"`, `data-testid="rollout-form"`} {
		if !strings.Contains(b, want) {
			t.Errorf("plan lacks %s", want)
		}
	}
	if resp, _ := e.get(platform, "/platform/rollouts/new?template=nope"); resp.StatusCode != 404 {
		t.Errorf("plan of a missing template: %d", resp.StatusCode)
	}
	// A bad batch size is named at the field, nothing starts.
	resp, b := e.post(platform, "/platform/rollouts", url.Values{"template": {"ubuntu-2404"}, "version": {"2"}, "batchSize": {"0"}})
	if resp.StatusCode != 422 || !strings.Contains(b, `data-testid="error-batch_size"`) || e.count(`SELECT count(*) FROM rollouts`) != 0 {
		t.Errorf("batch size 0: %d", resp.StatusCode)
	}
	resp, _ = e.post(platform, "/platform/rollouts", url.Values{"template": {"ubuntu-2404"}, "version": {"2"}, "batchSize": {"2"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start: %d", resp.StatusCode)
	}
	path := resp.Header.Get("Location")
	_, b = e.get(platform, path)
	for _, want := range []string{"Rollout #", "ubuntu-2404 to v2", `data-testid="batch-1"`, `data-testid="batch-2"`,
		`hx-trigger="every 2s"`, `data-testid="rollout-pause"`, `data-testid="skipped-ro-3"`, "a pet: only its owner, developer"} {
		if !strings.Contains(b, want) {
			t.Errorf("rollout page lacks %s", want)
		}
	}
	// The owner is told on the VM's page.
	_, b = e.get(owner, "/requests/"+strconv.FormatInt(ids[2], 10))
	if !strings.Contains(b, "Scheduled for a rollout") || !strings.Contains(b, "in batch 2 of 2") || !strings.Contains(b, "Mark it as a pet before then") {
		t.Errorf("owner's page does not say the rollout will rebuild the VM")
	}
	if !strings.Contains(b, `data-testid="rollout-notice">Rollout #`) || !strings.Contains(b, "of ubuntu-2404 to v2 will rebuild this VM in batch 2 of 2 (now at batch 1)") ||
		!strings.Contains(b, "Mark it as a pet to keep it as it is.") {
		t.Errorf("owner's page lacks the rollout notice")
	}
	if _, b := e.get(owner, "/requests/"+strconv.FormatInt(ids[3], 10)); strings.Contains(b, `data-testid="rollout-notice"`) {
		t.Errorf("the pet's page says a rollout will rebuild it")
	}
	// A second rollout of the same template is refused while this one runs.
	resp, b = e.post(platform, "/platform/rollouts", url.Values{"template": {"ubuntu-2404"}, "version": {"2"}, "batchSize": {"2"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(b, "under way") {
		t.Errorf("second rollout: %d", resp.StatusCode)
	}
	if resp, _ := e.post(platform, path+"/pause", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pause: %d", resp.StatusCode)
	}
	_, b = e.get(platform, path+"/progress")
	if !strings.Contains(b, "paused by platform") || !strings.Contains(b, `data-testid="rollout-resume"`) || strings.Contains(b, `data-testid="rollout-pause"`) {
		t.Errorf("paused progress:\n%s", b)
	}
	if resp, b := e.post(platform, path+"/pause", nil); resp.StatusCode != http.StatusConflict || !strings.Contains(b, "not running") {
		t.Errorf("pause twice: %d", resp.StatusCode)
	}
	if resp, _ := e.post(platform, path+"/frobnicate", nil); resp.StatusCode != 404 {
		t.Errorf("unknown action: %d", resp.StatusCode)
	}
	if resp, _ := e.post(platform, path+"/resume", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("resume: %d", resp.StatusCode)
	}
	if resp, _ := e.post(platform, path+"/cancel", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel: %d", resp.StatusCode)
	}
	_, b = e.get(platform, path)
	if !strings.Contains(b, "Cancelled;") || strings.Contains(b, `hx-trigger="every 2s"`) || strings.Contains(b, `data-testid="rollout-cancel"`) {
		t.Errorf("cancelled rollout page:\n%s", b)
	}
	if n := e.count(`SELECT count(*) FROM audit_log WHERE action IN ('rollout_start', 'rollout_pause', 'rollout_resume', 'rollout_cancel')`); n != 4 {
		t.Errorf("%d rollout audit entries, want 4", n)
	}
	_, b = e.get(platform, "/platform/rollouts")
	if !strings.Contains(b, "cancelled") || !strings.Contains(b, "0 of 3 rebuilt, 1 skipped") {
		t.Errorf("rollouts list:\n%s", b)
	}
}

// TestRolloutAPI starts, reads, pauses and cancels a rollout through the
// API, with field errors and conflicts in the API's format.
func TestRolloutAPI(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	for i := range 3 {
		e.cattleRunning(fmt.Sprintf("api-ro-%d", i))
	}
	e.cattleV2()
	tok := e.token("platform")
	resp, b := e.apiDo(tok, "POST", "/api/v1/rollouts", `{"template":"ubuntu-2404","batchSize":500}`, nil)
	if resp.StatusCode != 422 || !strings.Contains(b, `"field": "batch_size"`) {
		t.Errorf("batch 500: %d %s", resp.StatusCode, b)
	}
	resp, b = e.apiDo(tok, "POST", "/api/v1/rollouts", `{"template":"ubuntu-2404","batchSize":2}`, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start: %d %s", resp.StatusCode, b)
	}
	var ro struct {
		ID      int64          `json:"id"`
		State   string         `json:"state"`
		Batches int            `json:"batches"`
		Counts  map[string]int `json:"counts"`
		VMs     []struct {
			Name  string `json:"name"`
			Batch int    `json:"batch"`
			State string `json:"state"`
		} `json:"vms"`
	}
	if err := json.Unmarshal([]byte(b), &ro); err != nil {
		t.Fatal(err)
	}
	if ro.State != "running" || ro.Batches != 2 || ro.Counts["pending"] != 3 || len(ro.VMs) != 3 || ro.VMs[2].Batch != 2 {
		t.Errorf("rollout %+v", ro)
	}
	p := "/api/v1/rollouts/" + strconv.FormatInt(ro.ID, 10)
	if resp, b := e.apiDo(tok, "POST", "/api/v1/rollouts", `{"template":"ubuntu-2404"}`, nil); resp.StatusCode != 409 {
		t.Errorf("second rollout: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.apiDo(tok, "POST", p+"/pause", "", nil); resp.StatusCode != 200 || !strings.Contains(b, `"state": "paused"`) {
		t.Errorf("pause: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.apiDo(tok, "POST", p+"/cancel", "", nil); resp.StatusCode != 200 || !strings.Contains(b, `"state": "cancelled"`) {
		t.Errorf("cancel: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.apiDo(tok, "POST", p+"/resume", "", nil); resp.StatusCode != 409 {
		t.Errorf("resume cancelled: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.apiDo(tok, "GET", "/api/v1/rollouts", "", nil); resp.StatusCode != 200 || !strings.Contains(b, `"state": "cancelled"`) {
		t.Errorf("list: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.apiDo(e.token("developer"), "GET", p, "", nil); resp.StatusCode != 403 {
		t.Errorf("developer reads a rollout: %d", resp.StatusCode)
	}
	if resp, _ := e.apiDo(tok, "GET", "/api/v1/rollouts/999999", "", nil); resp.StatusCode != 404 {
		t.Errorf("missing rollout: %d", resp.StatusCode)
	}
	_ = store.RolloutPaused
}

// TestRolloutPlanHasOneBatchSize renders the plan from a real database: one
// batch size input, the plan's, which the start form carries hidden; a bad
// one is named at the field and no start is offered.
func TestRolloutPlanHasOneBatchSize(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	platform := e.browser("platform")
	_, b := e.get(platform, "/platform/rollouts/new?template=ubuntu-2404&batchSize=2")
	if n := strings.Count(b, `name="batchSize" type="number"`); n != 1 {
		t.Errorf("%d batch size inputs, want 1", n)
	}
	resp, b := e.get(platform, "/platform/rollouts/new?template=ubuntu-2404&batchSize=0")
	if resp.StatusCode != http.StatusOK || !strings.Contains(b, `data-testid="error-batch_size"`) || strings.Contains(b, `data-testid="rollout-form"`) {
		t.Errorf("a plan with batch size 0: %d, error shown %v, start offered %v", resp.StatusCode,
			strings.Contains(b, `data-testid="error-batch_size"`), strings.Contains(b, `data-testid="rollout-form"`))
	}
}
