package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	virtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/testdb"
)

// TestExportWritesAFolderOfManifests: `portal export --team T --dir D`
// writes one VirtualMachine per file, as created, and a kustomization.yaml.
func TestExportWritesAFolderOfManifests(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewURL(t)
	ctx := context.Background()
	st := testStore(t, dbURL)
	if err := seed(ctx, st, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	jobs, err := river.NewClient(riverpgxv5.New(st.Pool()), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st.SetJobClient(jobs)
	teams, err := st.Teams(ctx)
	if err != nil || len(teams) == 0 {
		t.Fatalf("teams: %v", err)
	}
	dev, err := st.UserByLogin(ctx, "developer")
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.SubmitRequest(ctx, store.NewRequest{TeamID: *dev.TeamID, Requester: dev, Template: "cirros", Size: "nano",
		Name: "exported", SSHPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo dev@example", LeaseDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	err = testdb.Provision(ctx, st, r.ID, func(r store.Request) (store.VM, error) {
		tv, err := st.TemplateVersion(ctx, r.TemplateID, r.TemplateVersion)
		if err != nil {
			return store.VM{}, err
		}
		vm, err := provision.Render(tv.Spec, r)
		if err != nil {
			return store.VM{}, err
		}
		m, err := provision.Manifest(vm)
		return store.VM{Namespace: r.Namespace, Name: r.Name, UID: "u-1", Manifest: m}, err
	})
	if err != nil {
		t.Fatal(err)
	}

	// A pool of two, exported as its VirtualMachinePool.
	pr, err := st.SubmitRequest(ctx, store.NewRequest{TeamID: *dev.TeamID, Requester: dev, Template: "cirros", Size: "nano",
		Name: "herd", Replicas: 2, SSHPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo dev@example", LeaseDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	err = testdb.Provision(ctx, st, pr.ID, func(r store.Request) (store.VM, error) {
		tv, err := st.TemplateVersion(ctx, r.TemplateID, r.TemplateVersion)
		if err != nil {
			return store.VM{}, err
		}
		p, err := provision.RenderPool(tv.Spec, r)
		if err != nil {
			return store.VM{}, err
		}
		m, err := provision.PoolManifest(p)
		return store.VM{Namespace: r.Namespace, Name: r.Name, UID: "u-2", Manifest: m}, err
	})
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "vms")
	var out, errOut bytes.Buffer
	env := map[string]string{"DATABASE_URL": dbURL}
	err = run(ctx, []string{"export", "--team", r.TeamName, "--dir", dir}, func(k string) string { return env[k] }, &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "1 VirtualMachine(s) and 1 VirtualMachinePool(s) of team "+r.TeamName) {
		t.Fatalf("export: %v\n%s%s", err, out.String(), errOut.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "exported.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vm virtv1.VirtualMachine
	if err := yaml.UnmarshalStrict(b, &vm); err != nil || vm.Name != "exported" || vm.Labels[provision.LabelRequest] == "" {
		t.Errorf("exported.yaml: %v %+v", err, vm.ObjectMeta)
	}
	pb, err := os.ReadFile(filepath.Join(dir, "herd.yaml"))
	if err != nil || !strings.Contains(string(pb), "kind: VirtualMachinePool") || !strings.Contains(string(pb), "replicas: 2") {
		t.Errorf("herd.yaml: %v\n%s", err, pb)
	}
	k, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil || !strings.Contains(string(k), "resources:\n  - exported.yaml\n  - herd.yaml\n") {
		t.Errorf("kustomization: %v\n%s", err, k)
	}
	// Usage errors.
	if err := run(ctx, []string{"export", "--dir", dir}, func(k string) string { return env[k] }, &out, &errOut); err != errUsage {
		t.Errorf("no team: %v", err)
	}
	if err := run(ctx, []string{"export", "--team", "nosuch", "--dir", dir}, func(k string) string { return env[k] }, &out, &errOut); err == nil ||
		!strings.Contains(err.Error(), `no team named "nosuch"`) {
		t.Errorf("unknown team: %v", err)
	}
}
