package provision_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/provision"
	"paddock/internal/store"
)

// TestKubeWatcherListsPageByPage runs on the real kube-apiserver with
// KubeVirt's CRDs and admission webhooks (nothing here needs a VM's status,
// so no stand-in plays a part). The watcher's first list of VMs asks the
// server for pages, even when the informer asks for resourceVersion "0"
// (which the server would answer whole from its watch cache), and keeps
// only slim copies: 7 VMs with a page size of 3 take 3 calls, every VM
// comes back without its template, and the list's resourceVersion is the
// one the pages were read at, not older than the last create, so the watch
// that follows misses nothing.
func TestKubeWatcherListsPageByPage(t *testing.T) {
	env := realCluster(t)
	ctx := context.Background()
	ns, err := env.CreateNamespace(ctx, "paged")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	api := admin.Virt.KubevirtV1().VirtualMachines(ns)
	spec := templateNamed(t, "cirros")
	var last string
	for i := range 7 {
		r := store.Request{ID: int64(900 + i), TeamName: ns, RequesterLogin: "dana@example.com",
			TemplateName: spec.Name, TemplateVersion: 1, Size: spec.Sizes[0].Name, SSHPublicKey: sshKey, LeaseDays: 1}
		vm, err := api.Create(ctx, renderFor(t, spec, r, ns, fmt.Sprintf("vm-%d", i)), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if vm.Spec.Template == nil {
			t.Fatal("the server returned a VM without its template")
		}
		last = vm.ResourceVersion
	}

	var calls []metav1.ListOptions
	list := func(ctx context.Context, o metav1.ListOptions) (*virtv1.VirtualMachineList, error) {
		calls = append(calls, o)
		return api.List(ctx, o)
	}
	got, err := provision.ListSlimVMs(ctx, metav1.ListOptions{ResourceVersion: "0", LabelSelector: provision.LabelManagedBy + "=" + provision.ManagedByValue}, 3, list)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 {
		t.Errorf("%d calls for 7 VMs in pages of 3, want 3: %+v", len(calls), calls)
	}
	for i, o := range calls {
		if o.Limit != 3 || o.ResourceVersion != "" || (i > 0) != (o.Continue != "") {
			t.Errorf("call %d asked %+v; want limit 3, no resourceVersion, a continue token after the first", i, o)
		}
	}
	if len(got.Items) != 7 {
		t.Fatalf("%d VMs, want 7", len(got.Items))
	}
	seen := map[string]bool{}
	for _, item := range got.Items {
		vm, ok := item.Object.(*virtv1.VirtualMachine)
		if !ok {
			t.Fatalf("the list holds a %T, want a *VirtualMachine", item.Object)
		}
		seen[vm.Name] = true
		if vm.Spec.Template != nil || vm.Spec.RunStrategy == nil || vm.Labels[provision.LabelManagedBy] != provision.ManagedByValue || vm.UID == "" {
			t.Errorf("VM %s is not the slim copy: template %v, run strategy %v, labels %v", vm.Name, vm.Spec.Template != nil, vm.Spec.RunStrategy, vm.Labels)
		}
	}
	if len(seen) != 7 {
		t.Errorf("names %v, want 7 different", seen)
	}
	if got.ResourceVersion == "" || newerRV(last, got.ResourceVersion) {
		t.Errorf("list at resourceVersion %q, older than the last create %q", got.ResourceVersion, last)
	}

	// Instances come back slim the same way (none exist here: one call).
	calls = nil
	vmis, err := provision.ListSlimVMIs(ctx, metav1.ListOptions{ResourceVersion: "0"}, 3,
		func(ctx context.Context, o metav1.ListOptions) (*virtv1.VirtualMachineInstanceList, error) {
			calls = append(calls, o)
			return admin.Virt.KubevirtV1().VirtualMachineInstances(ns).List(ctx, o)
		})
	if err != nil || len(vmis.Items) != 0 || vmis.ResourceVersion == "" || len(calls) != 1 {
		t.Errorf("instances: %v, %d items at %q in %d calls", err, len(vmis.Items), vmis.ResourceVersion, len(calls))
	}
}

// newerRV says whether resourceVersion a is newer than b (both are etcd
// revisions on this server).
func newerRV(a, b string) bool {
	var x, y int64
	fmt.Sscan(a, &x)
	fmt.Sscan(b, &y)
	return x > y
}
