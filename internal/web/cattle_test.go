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
	err = e.st.Provision(ctx, r.ID, func(_ context.Context, r store.Request, _ store.TemplateVersion) (store.VM, error) {
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
		`<option value="1">v1 (this VM&#39;s)</option>`, "starts with a fresh disk", `data-testid="pet-toggle">Mark as pet<`} {
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
	if resp, b := e.post(owner, path+"/rebuild", url.Values{"version": {"9"}}); resp.StatusCode != 422 || !strings.Contains(b, "no version 9") {
		t.Errorf("version 9: %d", resp.StatusCode)
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
	// While it rebuilds, another rebuild is refused for the state.
	if resp, _ := e.post(owner, path+"/rebuild", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("second rebuild: %d", resp.StatusCode)
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
	if n := e.count(`SELECT count(*) FROM river_job WHERE kind = 'rebuild'`); n != 2 {
		t.Errorf("%d rebuild jobs", n)
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
