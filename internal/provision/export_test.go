package provision_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

// TestExportRoundTrip exports VMs as created by the cluster (with the
// fields the server sets) and reads every file back: each is the rendered
// VirtualMachine, labels kept, server-set fields gone, and the
// kustomization lists exactly the files.
func TestExportRoundTrip(t *testing.T) {
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	var rs []store.Request
	want := map[string]*virtv1.VirtualMachine{}
	for i, spec := range specs {
		r := store.Request{ID: int64(10 + i), TeamName: "payments", Namespace: "payments", RequesterLogin: "dev",
			TemplateName: spec.Name, TemplateVersion: 3, Size: spec.Sizes[0].Name, Name: "vm-" + spec.Name, SSHPublicKey: sshKey}
		vm, err := provision.Render(spec, r)
		if err != nil {
			t.Fatal(err)
		}
		want[vm.Name+".yaml"] = vm.DeepCopy()
		// What the API server adds.
		vm.UID, vm.ResourceVersion, vm.Generation = "6f1c", "4711", 2
		vm.CreationTimestamp = metav1.Now()
		vm.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "paddock"}}
		vm.Status = virtv1.VirtualMachineStatus{PrintableStatus: virtv1.VirtualMachineStatusRunning, Ready: true}
		b, err := yaml.Marshal(vm)
		if err != nil {
			t.Fatal(err)
		}
		r.VM = &store.VM{Namespace: "payments", Name: vm.Name, Manifest: string(b)}
		rs = append(rs, r)
	}
	rs = append(rs, store.Request{ID: 99, Name: "odd", VM: &store.VM{Manifest: "kind: ConfigMap\n"}})
	files, err := provision.Export("payments", rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(specs)+1 || files[len(files)-1].Name != provision.KustomizationFile {
		t.Fatalf("%d files", len(files))
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	kust := files[len(files)-1].Data
	if err := yaml.UnmarshalStrict(kust, &k); err != nil || k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		t.Fatalf("kustomization: %v\n%s", err, kust)
	}
	if !strings.Contains(string(kust), "# Left out: request 99 (odd)") {
		t.Errorf("the left-out manifest is not named:\n%s", kust)
	}
	var names []string
	for _, f := range files[:len(files)-1] {
		names = append(names, f.Name)
		for _, bad := range []string{"status:", "uid:", "resourceVersion:", "generation:", "managedFields:", "creationTimestamp:"} {
			if strings.Contains(string(f.Data), bad) {
				t.Errorf("%s has %s", f.Name, bad)
			}
		}
		var got virtv1.VirtualMachine
		if err := yaml.UnmarshalStrict(f.Data, &got); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		// Compared as YAML: quantities parsed back differ in their cached form only.
		w := want[f.Name]
		if w == nil {
			t.Fatalf("unexpected file %s", f.Name)
		}
		gb, _ := yaml.Marshal(got.Spec)
		wb, _ := yaml.Marshal(w.Spec)
		if string(gb) != string(wb) || !reflect.DeepEqual(got.Labels, w.Labels) || got.Namespace != "payments" {
			t.Errorf("%s does not round-trip:\n%s\n---\n%s", f.Name, gb, wb)
		}
		if got.Labels[provision.LabelManagedBy] != provision.ManagedByValue || got.Labels[provision.LabelTemplateVersion] != "3" {
			t.Errorf("%s labels: %v", f.Name, got.Labels)
		}
	}
	if !slices.Equal(k.Resources, names) {
		t.Errorf("kustomization lists %v, files are %v", k.Resources, names)
	}
}

// TestExportKustomizationGolden pins the kustomization's exact text.
func TestExportKustomizationGolden(t *testing.T) {
	files, err := provision.Export("payments", nil)
	if err != nil {
		t.Fatal(err)
	}
	const golden = "# The VirtualMachines of team payments, exported by Paddock.\n" +
		"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"
	if len(files) != 1 || string(files[0].Data) != golden {
		t.Errorf("got %q", files)
	}
}
