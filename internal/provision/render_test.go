package provision

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	virtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

var update = flag.Bool("update", false, "rewrite golden files")

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo dev@example"

func testRequest(tpl string, size string) store.Request {
	return store.Request{
		ID: 42, TeamName: "payments", Namespace: "payments", RequesterLogin: "dana@example.com",
		TemplateName: tpl, TemplateVersion: 3, Size: size, Name: "web-1", SSHPublicKey: testKey,
		LeaseDays: 7, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// TestRenderGolden renders every seeded template in every size and compares
// with testdata/golden/<template>-<size>.yaml (go test -update rewrites them).
func TestRenderGolden(t *testing.T) {
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, spec := range specs {
		for _, size := range spec.Sizes {
			vm, err := Render(spec, testRequest(spec.Name, size.Name))
			if err != nil {
				t.Fatalf("%s/%s: %v", spec.Name, size.Name, err)
			}
			checkAdmission(t, vm)
			got, err := Manifest(vm)
			if err != nil {
				t.Fatal(err)
			}
			kinds[spec.Image.Kind()] = true
			kinds[map[bool]string{true: "instancetype", false: "explicit"}[size.Instancetype != ""]] = true
			path := filepath.Join("testdata", "golden", spec.Name+"-"+size.Name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/provision -run TestRenderGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		}
	}
	for _, k := range []string{"containerDisk", "registry", "http", "dataSource", "instancetype", "explicit"} {
		if !kinds[k] {
			t.Errorf("no seeded template covers %s", k)
		}
	}
}

// checkAdmission asserts what KubeVirt's webhooks check and the CRD schema
// does not.
func checkAdmission(t *testing.T, vm *virtv1.VirtualMachine) {
	t.Helper()
	spec := vm.Spec
	if spec.Running != nil {
		t.Error("spec.running is set; KubeVirt refuses it beside runStrategy")
	}
	if spec.RunStrategy == nil {
		t.Error("runStrategy is not set")
	}
	vols := map[string]bool{}
	for _, v := range spec.Template.Spec.Volumes {
		vols[v.Name] = true
	}
	for _, d := range spec.Template.Spec.Domain.Devices.Disks {
		if !vols[d.Name] {
			t.Errorf("disk %q has no volume", d.Name)
		}
	}
	dom := spec.Template.Spec.Domain
	if spec.Instancetype != nil && (dom.CPU != nil || dom.Memory != nil || len(dom.Resources.Requests) > 0) {
		t.Error("CPU or memory set in the domain beside an instancetype")
	}
	for _, v := range spec.Template.Spec.Volumes {
		if v.DataVolume != nil {
			found := false
			for _, dv := range spec.DataVolumeTemplates {
				found = found || dv.Name == v.DataVolume.Name
			}
			if !found {
				t.Errorf("volume %q refers to DataVolume %q with no template", v.Name, v.DataVolume.Name)
			}
		}
	}
	if vm.Labels[LabelRequest] == "" || spec.Template.ObjectMeta.Labels[LabelRequest] == "" {
		t.Error("request label missing on the VM or its instance template")
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) == 0 {
		t.Fatal("no example templates")
	}
	for _, spec := range specs {
		for _, size := range spec.Sizes {
			var manifests [2]string
			for i := range manifests {
				vm, err := Render(spec, testRequest(spec.Name, size.Name))
				if err != nil {
					t.Fatalf("%s/%s: render: %v", spec.Name, size.Name, err)
				}
				if manifests[i], err = Manifest(vm); err != nil {
					t.Fatalf("%s/%s: manifest: %v", spec.Name, size.Name, err)
				}
			}
			if manifests[0] == "" || manifests[0] != manifests[1] {
				t.Errorf("%s/%s renders differently twice:\n%s\n---\n%s", spec.Name, size.Name, manifests[0], manifests[1])
			}
		}
	}
}

func TestCloudInitMergesKeyAndKeepsTemplate(t *testing.T) {
	spec := store.TemplateSpec{Name: "x", SSHUser: "ubuntu", CloudInit: "#cloud-config\npackages: [htop]\nssh_authorized_keys: [ssh-ed25519 AAAA platform]\n"}
	out, err := CloudInit(spec, testRequest("x", "small"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "#cloud-config\n") {
		t.Fatalf("no header: %q", out)
	}
	var doc struct {
		Packages []string `json:"packages"`
		Keys     []string `json:"ssh_authorized_keys"`
		Hostname string   `json:"hostname"`
		User     string   `json:"user"`
	}
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Packages) != 1 || len(doc.Keys) != 2 || doc.Keys[1] != testKey || doc.Hostname != "web-1" || doc.User != "ubuntu" {
		t.Errorf("merged cloud-init: %+v", doc)
	}
}

func TestRenderUnknownSize(t *testing.T) {
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Render(specs[0], testRequest(specs[0].Name, "nope")); err == nil {
		t.Error("unknown size rendered")
	}
}

func TestLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"developer":             "developer",
		"dana@example.com":      "dana_example.com",
		"-x-":                   "x",
		strings.Repeat("a", 80): strings.Repeat("a", 63),
	} {
		if got := labelValue(in); got != want {
			t.Errorf("labelValue(%q) = %q, want %q", in, got, want)
		}
	}
}
