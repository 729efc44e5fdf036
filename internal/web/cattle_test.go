package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	virtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/testdb"
	"paddock/internal/web"
)

// cattleRunning makes a running request of the developer's, with the VM
// Paddock would have created for it on record.
func (e *env) cattleRunning(name string) store.Request {
	e.t.Helper()
	ctx := context.Background()
	r := e.grSubmit("developer", "ubuntu-2404", "small", name)
	tv, err := e.st.TemplateVersion(ctx, r.TemplateID, r.TemplateVersion)
	if err != nil {
		e.t.Fatal(err)
	}
	err = testdb.Provision(ctx, e.st, r.ID, func(r store.Request) (store.VM, error) {
		vm, err := provision.Render(tv.Spec, r)
		if err != nil {
			return store.VM{}, err
		}
		m, err := provision.Manifest(vm)
		return store.VM{Namespace: r.Namespace, Name: r.Name, UID: "uid-" + name, Status: "Running", Manifest: m}, err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Transition(ctx, r.ID, store.StateRunning, store.ActorCluster, "state", "", store.StateProvisioning); err != nil {
		e.t.Fatal(err)
	}
	r, err = e.st.Request(ctx, r.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) cattleState(id int64) store.Request {
	e.t.Helper()
	r, err := e.st.Request(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// cattleV2 publishes a second version of ubuntu-2404.
func (e *env) cattleV2() {
	e.t.Helper()
	ctx := context.Background()
	t, err := e.st.TemplateByName(ctx, "ubuntu-2404")
	if err != nil {
		e.t.Fatal(err)
	}
	t.Spec.Image.ContainerDisk = "quay.io/containerdisks/ubuntu:24.10"
	if _, _, err := e.st.PublishTemplate(ctx, t.Spec, nil); err != nil {
		e.t.Fatal(err)
	}
}

func TestRebuildFormWhoMayAndWhatItSays(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	pay := e.teams["payments"].ID
	mate, err := e.st.EnsureUser(ctx, "teammate", "teammate", store.RoleDeveloper, &pay)
	if err != nil {
		t.Fatal(err)
	}
	e.users["teammate"] = mate
	r := e.cattleRunning("web-1")
	e.cattleV2()
	path := "/requests/" + strconv.FormatInt(r.ID, 10)

	// The owner's page offers the rebuild with every version and says plainly what happens to the disk.
	owner := e.browser("developer")
	resp, b := e.get(owner, path)
	for _, want := range []string{`data-testid="rebuild-form"`, `<option value="2" selected>v2 (latest)</option>`,
		`<option value="1">v1 (this VM&#39;s, needs approval)</option>`, "starts with a fresh disk", `data-testid="pet-toggle">Mark as pet<`} {
		if resp.StatusCode != 200 || !strings.Contains(b, want) {
			t.Errorf("owner's page lacks %s", want)
		}
	}
	// Teammates and managers may not rebuild; outsiders do not see the VM.
	for who, want := range map[string]int{"teammate": 403, "manager": 403, "outsider": 404} {
		resp, b := e.post(e.browser(who), path+"/rebuild", url.Values{"version": {"2"}})
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", who, resp.StatusCode, want)
		}
		if who == "teammate" && !strings.Contains(b, "Only the VM") {
			t.Errorf("teammate refusal: %s", b)
		}
	}
	if _, b := e.get(e.browser("teammate"), path); strings.Contains(b, `data-testid="rebuild-form"`) || strings.Contains(b, `data-testid="pet-toggle"`) {
		t.Error("teammate is offered the rebuild or the pet toggle")
	}
	if got := e.cattleState(r.ID); got.State != store.StateRunning || got.TemplateVersion != 1 {
		t.Fatalf("refused rebuilds changed the request: %s v%d", got.State, got.TemplateVersion)
	}
	// A version that does not exist is named.
	if resp, b := e.postBack(owner, path+"/rebuild", url.Values{"version": {"9"}}); resp.StatusCode != http.StatusSeeOther ||
		!strings.Contains(b, "no version 9") || !strings.Contains(b, `data-testid="danger-zone"`) {
		t.Errorf("version 9: %d, or the page does not say why in the danger area", resp.StatusCode)
	}
	// The owner rebuilds from the latest.
	if resp, _ := e.post(owner, path+"/rebuild", url.Values{"version": {""}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("owner's rebuild: %d", resp.StatusCode)
	}
	got := e.cattleState(r.ID)
	if got.State != store.StateApproved || got.TemplateVersion != 2 || !strings.Contains(got.StateReason, "rebuilding from ubuntu-2404 v2") {
		t.Errorf("after rebuild: %s v%d %q", got.State, got.TemplateVersion, got.StateReason)
	}
	if _, b := e.get(owner, path); !strings.Contains(b, "Rebuild started") {
		t.Error("timeline lacks the rebuild")
	}
	// While it rebuilds, another rebuild is refused for the state, back on
	// the page with the reason.
	if resp, b := e.postBack(owner, path+"/rebuild", nil); resp.StatusCode != http.StatusSeeOther || !strings.Contains(b, "This cannot be done now: cannot rebuild") {
		t.Errorf("second rebuild: %d, or the page does not say why", resp.StatusCode)
	}

	// The platform team rebuilds cattle, but not a pet.
	r2 := e.cattleRunning("web-2")
	path2 := "/requests/" + strconv.FormatInt(r2.ID, 10)
	platform := e.browser("platform")
	if resp, _ := e.post(owner, path2+"/pet", url.Values{"pet": {"true"}}); resp.StatusCode != http.StatusSeeOther || !e.cattleState(r2.ID).Pet {
		t.Fatalf("owner marking a pet: %d", resp.StatusCode)
	}
	if resp, _ := e.post(platform, path2+"/pet", url.Values{"pet": {"false"}}); resp.StatusCode != 403 || !e.cattleState(r2.ID).Pet {
		t.Errorf("platform unmarking a pet: %d", resp.StatusCode)
	}
	if _, b := e.get(platform, path2); !strings.Contains(b, `data-testid="rebuild-refusal"`) || strings.Contains(b, `data-testid="rebuild-form"`) {
		t.Error("platform's page of a pet offers a rebuild or hides why not")
	}
	resp, b = e.post(platform, path2+"/rebuild", nil)
	if resp.StatusCode != 403 || !strings.Contains(b, "web-2 is a pet") || !strings.Contains(b, "developer") {
		t.Errorf("platform rebuilding a pet: %d", resp.StatusCode)
	}
	if resp, _ := e.post(owner, path2+"/pet", url.Values{"pet": {"false"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("owner unmarking: %d", resp.StatusCode)
	}
	if resp, _ := e.post(platform, path2+"/rebuild", url.Values{"version": {"1"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("platform rebuilding cattle: %d", resp.StatusCode)
	}
	if n := e.count(`SELECT coalesce(sum(generation), 0) FROM requests`); n != 2 {
		t.Errorf("%d changes of desired state, want the 2 rebuilds", n)
	}
}

func TestRebuildAndPetAPI(t *testing.T) {
	e := setup(t, web.Config{})
	ctx := context.Background()
	pay := e.teams["payments"].ID
	mate, err := e.st.EnsureUser(ctx, "teammate", "teammate", store.RoleDeveloper, &pay)
	if err != nil {
		t.Fatal(err)
	}
	e.users["teammate"] = mate
	r := e.cattleRunning("api-1")
	e.cattleV2()
	base := "/api/v1/requests/" + strconv.FormatInt(r.ID, 10)
	dev, plat := e.token("developer"), e.token("platform")

	if resp, _ := e.apiDo(dev, "POST", base+"/pet", `{"pet":true}`, nil); resp.StatusCode != 200 {
		t.Fatalf("owner sets pet: %d", resp.StatusCode)
	}
	for who, want := range map[string]int{"teammate": 403, "platform": 403, "manager": 403, "outsider": 404} {
		if resp, _ := e.apiDo(e.token(who), "POST", base+"/pet", `{"pet":false}`, nil); resp.StatusCode != want {
			t.Errorf("%s sets pet: %d, want %d", who, resp.StatusCode, want)
		}
	}
	if resp, b := e.apiDo(dev, "POST", base+"/pet", `{}`, nil); resp.StatusCode != 422 || !strings.Contains(b, `"field": "pet"`) {
		t.Errorf("pet missing: %d %s", resp.StatusCode, b)
	}
	resp, b := e.apiDo(plat, "POST", base+"/rebuild", `{"version":2}`, nil)
	if resp.StatusCode != 403 || !strings.Contains(b, "is a pet") {
		t.Errorf("platform rebuilds a pet: %d %s", resp.StatusCode, b)
	}
	for who, want := range map[string]int{"teammate": 403, "manager": 403, "outsider": 404} {
		if resp, _ := e.apiDo(e.token(who), "POST", base+"/rebuild", "", nil); resp.StatusCode != want {
			t.Errorf("%s rebuilds: %d, want %d", who, resp.StatusCode, want)
		}
	}
	if resp, b := e.apiDo(dev, "POST", base+"/rebuild", `{"version":5}`, nil); resp.StatusCode != 422 || !strings.Contains(b, `"field": "version"`) {
		t.Errorf("version 5: %d %s", resp.StatusCode, b)
	}
	// No body: the latest version.
	resp, b = e.apiDo(dev, "POST", base+"/rebuild", "", nil)
	if resp.StatusCode != 202 || !strings.Contains(b, `"state": "approved"`) || !strings.Contains(b, `"templateVersion": 2`) {
		t.Errorf("owner rebuilds: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.apiDo(dev, "POST", base+"/rebuild", `{"version":1}`, nil); resp.StatusCode != 409 {
		t.Errorf("rebuild while rebuilding: %d", resp.StatusCode)
	}
	// The platform team rebuilds cattle.
	r2 := e.cattleRunning("api-2")
	if resp, b := e.apiDo(plat, "POST", fmt.Sprintf("/api/v1/requests/%d/rebuild", r2.ID), `{"version":1}`, nil); resp.StatusCode != 202 {
		t.Errorf("platform rebuilds cattle: %d %s", resp.StatusCode, b)
	}
}

// TestRebuildToAnOlderVersionWaitsForApproval: a developer who rebuilds to
// a version that the current one replaced, by form or API, opens an
// approval with the reason; the VM is rebuilt only once a manager approves.
// The platform team rebuilds to it at once.
func TestRebuildToAnOlderVersionWaitsForApproval(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	r := e.cattleRunning("web-1")
	e.cattleV2()
	path := "/requests/" + strconv.FormatInt(r.ID, 10)
	owner, manager := e.browser("developer"), e.browser("manager")

	if _, b := e.get(owner, path); !strings.Contains(b, `data-testid="rebuild-older"`) {
		t.Error("the owner's form does not say that older versions need approval")
	}
	if resp, _ := e.post(owner, path+"/rebuild", url.Values{"version": {"1"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("owner's rebuild to v1: %d", resp.StatusCode)
	}
	if got := e.cattleState(r.ID); got.State != store.StateRunning || got.TemplateVersion != 1 {
		t.Errorf("before approval: %s v%d", got.State, got.TemplateVersion)
	}
	if n := e.count(`SELECT coalesce(sum(generation), 0) FROM requests`); n != 0 {
		t.Errorf("%d changes of desired state before approval", n)
	}
	const reason = "rebuild to ubuntu-2404 v1, older than the current v2"
	if _, b := e.get(owner, path); !strings.Contains(b, `data-testid="rebuild-pending"`) || !strings.Contains(b, reason) {
		t.Error("the VM's page does not show the rebuild waiting for approval")
	}
	_, b := e.get(manager, "/approvals")
	if !strings.Contains(b, "Rebuild web-1 from ubuntu-2404 v1, an older version (it is on v1)") || !strings.Contains(b, reason) {
		t.Error("the queue does not show the rebuild and why")
	}
	var id int64
	if err := e.st.Pool().QueryRow(context.Background(), `SELECT id FROM approvals WHERE request_id = $1 AND kind = 'rebuild'`, r.ID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if resp, b := e.post(manager, fmt.Sprintf("/approvals/%d/approve", id), url.Values{"comment": {"ok"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	if got := e.cattleState(r.ID); got.State != store.StateApproved || got.TemplateVersion != 1 {
		t.Errorf("after approval: %s v%d", got.State, got.TemplateVersion)
	}

	// The API says that it waits, and for which approval.
	r2 := e.cattleRunning("web-2") // on v2
	api := fmt.Sprintf("/api/v1/requests/%d/rebuild", r2.ID)
	resp, b := e.apiDo(e.token("developer"), "POST", api, `{"version":1}`, nil)
	if resp.StatusCode != 202 || !strings.Contains(b, `"approvalId"`) || !strings.Contains(b, `"approvalReason": "`+reason+`"`) ||
		!strings.Contains(b, `"state": "running"`) || !strings.Contains(b, `"templateVersion": 2`) {
		t.Errorf("developer's API rebuild to v1: %d %s", resp.StatusCode, b)
	}
	_, b = e.apiDo(e.token("manager"), "GET", "/api/v1/approvals", "", nil)
	if !strings.Contains(b, `"kind": "rebuild"`) || !strings.Contains(b, `"version": 1`) {
		t.Errorf("API approvals: %s", b)
	}
	// The platform team does not wait.
	r3 := e.cattleRunning("web-3")
	resp, b = e.apiDo(e.token("platform"), "POST", fmt.Sprintf("/api/v1/requests/%d/rebuild", r3.ID), `{"version":1}`, nil)
	if resp.StatusCode != 202 || strings.Contains(b, "approvalId") || !strings.Contains(b, `"state": "approved"`) || !strings.Contains(b, `"templateVersion": 1`) {
		t.Errorf("platform's API rebuild to v1: %d %s", resp.StatusCode, b)
	}
}

// TestWithdrawnVersion: the platform team withdraws a version on its page
// (with a reason, audited, reversible); it is then offered to nobody and
// refused, with the reason, to rebuilds by form and API, to rollouts and to
// publishing it again, while the VM on it is told.
func TestWithdrawnVersion(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	r := e.cattleRunning("web-1") // on v1
	e.cattleV2()
	platform, owner := e.browser("platform"), e.browser("developer")
	tpl := "/platform/templates/ubuntu-2404"
	const note = "its image leaks SSH host keys"

	if resp, _ := e.post(owner, tpl+"/versions/1/withdraw", url.Values{"note": {note}}); resp.StatusCode != 403 {
		t.Errorf("a developer withdraws: %d", resp.StatusCode)
	}
	if resp, b := e.post(platform, tpl+"/versions/1/withdraw", url.Values{"note": {""}}); resp.StatusCode != 422 || !strings.Contains(b, "is required") {
		t.Errorf("withdraw without a note: %d", resp.StatusCode)
	}
	if resp, b := e.post(platform, tpl+"/versions/2/withdraw", url.Values{"note": {note}}); resp.StatusCode != 409 || !strings.Contains(b, "current version") {
		t.Errorf("withdraw the current version: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.post(platform, tpl+"/versions/1/withdraw", url.Values{"note": {note}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("withdraw v1: %d", resp.StatusCode)
	}
	if _, b := e.get(platform, tpl); !strings.Contains(b, `data-testid="withdrawn-1"`) || !strings.Contains(b, note) || strings.Contains(b, `data-testid="withdrawn-2"`) {
		t.Error("the template page does not show v1 as withdrawn, with why")
	}
	if _, b := e.get(platform, tpl+"/versions/1"); !strings.Contains(b, `data-testid="reinstate"`) || strings.Contains(b, `data-testid="republish"`) {
		t.Error("the version page does not offer to reinstate, or offers to publish it again")
	}
	if n := e.count(`SELECT count(*) FROM audit_log WHERE target = 'template:ubuntu-2404' AND actor = 'platform'
		AND details->>'change' = 'withdraw' AND details->>'version' = '1' AND details->>'note' = '` + note + `'`); n != 1 {
		t.Errorf("%d audit entries for the withdrawal", n)
	}

	// Offered to nobody; refused, with why, to the form, the API and rollouts.
	path := "/requests/" + strconv.FormatInt(r.ID, 10)
	_, b := e.get(owner, path)
	if strings.Contains(b, `<option value="1"`) || !strings.Contains(b, `data-testid="version-withdrawn"`) || !strings.Contains(b, note) {
		t.Error("the VM's page offers v1, or does not say that its version was withdrawn")
	}
	for _, who := range []string{"developer", "platform"} {
		resp, b := e.postBack(e.browser(who), path+"/rebuild", url.Values{"version": {"1"}})
		if resp.StatusCode != http.StatusSeeOther || !strings.Contains(b, "withdrawn") || !strings.Contains(b, note) {
			t.Errorf("%s's form rebuild to v1: %d", who, resp.StatusCode)
		}
		resp, b = e.apiDo(e.token(who), "POST", "/api/v1"+path+"/rebuild", `{"version":1}`, nil)
		if resp.StatusCode != 422 || !strings.Contains(b, "withdrawn") || !strings.Contains(b, `"field": "version"`) {
			t.Errorf("%s's API rebuild to v1: %d %s", who, resp.StatusCode, b)
		}
	}
	resp, b := e.apiDo(e.token("platform"), "POST", "/api/v1/rollouts", `{"template":"ubuntu-2404","version":1}`, nil)
	if resp.StatusCode != 422 || !strings.Contains(b, "withdrawn") {
		t.Errorf("API rollout to v1: %d %s", resp.StatusCode, b)
	}
	if _, b := e.get(platform, "/platform/rollouts/new?template=ubuntu-2404"); strings.Contains(b, `<option value="1"`) {
		t.Error("the rollout form offers v1")
	}
	if resp, b := e.post(platform, tpl+"/versions/1/republish", nil); resp.StatusCode != 409 || !strings.Contains(b, "withdrawn") {
		t.Errorf("publish v1 again: %d", resp.StatusCode)
	}
	if got := e.cattleState(r.ID); got.State != store.StateRunning || got.TemplateVersion != 1 {
		t.Errorf("the VM on v1 changed: %s v%d", got.State, got.TemplateVersion)
	}

	// Reinstated, it is offered again.
	if resp, _ := e.post(platform, tpl+"/versions/1/reinstate", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reinstate v1: %d", resp.StatusCode)
	}
	if _, b := e.get(owner, path); !strings.Contains(b, `<option value="1"`) {
		t.Error("a reinstated version is not offered")
	}
	if n := e.count(`SELECT count(*) FROM audit_log WHERE target = 'template:ubuntu-2404' AND details->>'change' = 'reinstate'`); n != 1 {
		t.Errorf("%d audit entries for the reinstatement", n)
	}
}

func TestTeamManifestsZip(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	e.cattleRunning("web-b")
	e.cattleRunning("web-a")
	e.grSubmit("developer", "centos-stream9", "medium", "pending-1") // no VM: not exported
	dev := e.browser("developer")
	if _, b := e.get(dev, "/requests"); !strings.Contains(b, `href="/teams/payments/manifests.zip"`) || strings.Contains(b, "billing.zip") {
		t.Error("the VM list does not offer the developer's own team only")
	}
	if _, b := e.get(e.browser("manager"), "/requests"); !strings.Contains(b, "billing.zip") || !strings.Contains(b, "payments.zip") {
		t.Error("the manager is not offered every team")
	}
	if resp, _ := e.get(e.browser("outsider"), "/teams/payments/manifests.zip"); resp.StatusCode != 404 {
		t.Errorf("outsider: %d", resp.StatusCode)
	}
	if resp, _ := e.get(dev, "/teams/nosuch/manifests.zip"); resp.StatusCode != 404 {
		t.Errorf("unknown team: %d", resp.StatusCode)
	}
	resp, b := e.get(dev, "/teams/payments/manifests.zip")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	z, err := zip.NewReader(bytes.NewReader([]byte(b)), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	files := map[string]string{}
	for _, f := range z.File {
		names = append(names, f.Name)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(rc)
		rc.Close()
		files[f.Name] = buf.String()
	}
	if got := strings.Join(names, ","); got != "payments/web-a.yaml,payments/web-b.yaml,payments/kustomization.yaml" {
		t.Errorf("files: %s", got)
	}
	if k := files["payments/kustomization.yaml"]; !strings.Contains(k, "kind: Kustomization") || !strings.Contains(k, "  - web-a.yaml\n  - web-b.yaml\n") {
		t.Errorf("kustomization:\n%s", k)
	}
	for _, n := range []string{"payments/web-a.yaml", "payments/web-b.yaml"} {
		var vm virtv1.VirtualMachine
		if err := yaml.UnmarshalStrict([]byte(files[n]), &vm); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if vm.Kind != "VirtualMachine" || vm.Labels[provision.LabelTeam] != "payments" || vm.Labels[provision.LabelTemplateVersion] != "1" {
			t.Errorf("%s: %s %v", n, vm.Kind, vm.Labels)
		}
		for _, bad := range []string{"status:", "uid:", "resourceVersion:", "creationTimestamp:"} {
			if strings.Contains(files[n], bad) {
				t.Errorf("%s has %s", n, bad)
			}
		}
	}
}
