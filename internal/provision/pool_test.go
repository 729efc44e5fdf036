package provision_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1beta1"
	"sigs.k8s.io/yaml"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

func (h *harness) submitPool(template, size, name string, replicas int) store.Request {
	h.t.Helper()
	r, err := h.st.SubmitRequest(h.ctx, store.NewRequest{TeamID: h.team.ID, Requester: h.dev, Template: template,
		Size: size, Name: name, SSHPublicKey: sshKey, LeaseDays: 3, Replicas: replicas})
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// poolReady reports whether a pool request lists n members, each ready
// with an IP.
func poolReady(n int) func(store.Request) bool {
	return func(r store.Request) bool {
		if len(r.Members) != n {
			return false
		}
		for _, m := range r.Members {
			if !m.Ready || m.IP == "" {
				return false
			}
		}
		return true
	}
}

// poolIn returns the pool's spec.replicas and its member VMs' names as the
// API server has them.
func (h *harness) poolIn(ns, name string) (int, []string) {
	h.t.Helper()
	p, err := h.cluster.Virt.PoolV1beta1().VirtualMachinePools(ns).Get(h.ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatalf("get pool %s/%s: %v", ns, name, err)
	}
	list, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).List(h.ctx, metav1.ListOptions{LabelSelector: provision.LabelPool + "=" + name})
	if err != nil {
		h.t.Fatal(err)
	}
	var names []string
	for _, vm := range list.Items {
		if vm.DeletionTimestamp == nil {
			names = append(names, vm.Name)
		}
	}
	slices.Sort(names)
	return int(*p.Spec.Replicas), names
}

func TestRenderPool(t *testing.T) {
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range specs {
		r := store.Request{ID: 7, TeamName: "payments", Namespace: "payments", RequesterLogin: "dev", TemplateName: spec.Name,
			TemplateVersion: 2, Size: spec.Sizes[0].Name, Name: "workers", SSHPublicKey: sshKey, Pool: true, Replicas: 4}
		p, err := provision.RenderPool(spec, r)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := provision.Render(spec, r)
		if err != nil {
			t.Fatal(err)
		}
		tpl := p.Spec.VirtualMachineTemplate
		if *p.Spec.Replicas != 4 || p.Kind != "VirtualMachinePool" || p.APIVersion != "pool.kubevirt.io/v1beta1" {
			t.Errorf("%s: replicas %d, %s/%s", spec.Name, *p.Spec.Replicas, p.APIVersion, p.Kind)
		}
		// KubeVirt's pool webhook requires the selector to match the template's labels.
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(tpl.ObjectMeta.Labels)) {
			t.Errorf("%s: selector %v does not match template labels %v", spec.Name, p.Spec.Selector, tpl.ObjectMeta.Labels)
		}
		for _, l := range []map[string]string{p.Labels, tpl.ObjectMeta.Labels, tpl.Spec.Template.ObjectMeta.Labels} {
			if l[provision.LabelPool] != "workers" || l[provision.LabelRequest] != "7" || l[provision.LabelManagedBy] != "paddock" {
				t.Errorf("%s: labels %v", spec.Name, l)
			}
		}
		for _, dv := range tpl.Spec.DataVolumeTemplates {
			if dv.Labels[provision.LabelPool] != "workers" {
				t.Errorf("%s: DataVolume template labels %v", spec.Name, dv.Labels)
			}
		}
		// The same VM as a single request, but for the labels and the hostname.
		if !slices.Equal(volumeNames(tpl.Spec), volumeNames(vm.Spec)) || tpl.Spec.Instancetype != nil != (vm.Spec.Instancetype != nil) {
			t.Errorf("%s: pool template differs from the VM", spec.Name)
		}
		for _, v := range tpl.Spec.Template.Spec.Volumes {
			if v.CloudInitNoCloud != nil && strings.Contains(v.CloudInitNoCloud.UserData, "hostname:") {
				t.Errorf("%s: members share a hostname:\n%s", spec.Name, v.CloudInitNoCloud.UserData)
			}
		}
	}
}

func volumeNames(s virtv1.VirtualMachineSpec) []string {
	var ns []string
	for _, v := range s.Template.Spec.Volumes {
		ns = append(ns, v.Name)
	}
	return ns
}

func TestSimulatedPoolJourney(t *testing.T) {
	h := newSimHarness(t)
	owner := store.UserActor(h.dev)
	r := h.submitPool("cirros", "nano", "workers", 3)
	r = h.wait(r.ID, store.StateRunning, poolReady(3))
	if r.VM.Status != "3/3 ready" || !strings.Contains(r.VM.Manifest, "kind: VirtualMachinePool") {
		t.Errorf("pool status %q, manifest:\n%s", r.VM.Status, r.VM.Manifest)
	}
	if n, names := h.poolIn("payments", "workers"); n != 3 || !slices.Equal(names, []string{"workers-0", "workers-1", "workers-2"}) {
		t.Fatalf("pool replicas %d, members %v", n, names)
	}
	// The members are counted into the pool's request, never as VMs of
	// their own: the request's record is the pool.
	if r.VM.Name != "workers" {
		t.Errorf("request's VM record is %q", r.VM.Name)
	}

	scale := func(n int) {
		t.Helper()
		if _, err := h.st.ScalePool(h.ctx, r.ID, n, owner); err != nil {
			t.Fatalf("scale to %d: %v", n, err)
		}
		r = h.wait(r.ID, store.StateRunning, poolReady(n))
		if got, names := h.poolIn("payments", "workers"); got != n || len(names) != n {
			t.Fatalf("after scaling to %d: spec.replicas %d, members %v", n, got, names)
		}
	}
	scale(2)
	scale(3)

	// Scaled outside Paddock: the request's reconcile scales it back.
	scaleBehindPaddocksBack(t, h, "payments", "workers", 5)
	deadline := time.Now().Add(20 * time.Second)
	for got, names := h.poolIn("payments", "workers"); got != 3 || len(names) != 3; got, names = h.poolIn("payments", "workers") {
		if time.Now().After(deadline) {
			t.Fatalf("pool scaled to 5 outside Paddock: spec.replicas %d, members %v, want 3", got, names)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r = h.wait(r.ID, store.StateRunning, poolReady(3))

	act := func(a store.Action, want store.State, extra func(store.Request) bool) {
		t.Helper()
		if err := h.st.RequestAction(h.ctx, r.ID, a, owner); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		r = h.wait(r.ID, want, extra)
	}
	act(store.ActionStop, store.StateStopped, nil)
	list, _ := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").List(h.ctx, metav1.ListOptions{})
	for _, vm := range list.Items {
		if *vm.Spec.RunStrategy != virtv1.RunStrategyHalted {
			t.Errorf("after stop: %s runStrategy %s", vm.Name, *vm.Spec.RunStrategy)
		}
	}
	act(store.ActionStart, store.StateRunning, poolReady(3))
	act(store.ActionRestart, store.StateRunning, poolReady(3))

	// Rebuild: the old pool and all its members go before the new pool.
	p, _ := h.cluster.Virt.PoolV1beta1().VirtualMachinePools("payments").Get(h.ctx, "workers", metav1.GetOptions{})
	oldUID := p.UID
	// The restart above may still be replacing members' instances (the
	// request passes through provisioning meanwhile), and a rebuild is
	// refused until it is done: retry as a person would, for a while.
	for deadline := time.Now().Add(20 * time.Second); ; {
		_, err := h.st.RequestRebuild(h.ctx, r.ID, 0, owner)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "provisioning") || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r = h.wait(r.ID, store.StateRunning, func(r store.Request) bool { return poolReady(3)(r) && r.VM.UID != string(oldUID) })
	var kinds []string
	for _, e := range h.events(r.ID) {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Contains(kinds, "rebuild_deleted") {
		t.Errorf("rebuild events: %v", kinds)
	}

	// Drift: the pool deleted behind Paddock's back.
	if err := h.cluster.Virt.PoolV1beta1().VirtualMachinePools("payments").Delete(h.ctx, "workers", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r = h.wait(r.ID, store.StateDeleted, nil)
	if r.StateReason != "the VirtualMachinePool was deleted outside Paddock" {
		t.Errorf("drift reason %q", r.StateReason)
	}
	h.waitNoVMs("payments")
}

// waitNoVMs waits until no VM is left in ns.
// scaleBehindPaddocksBack sets the pool's spec.replicas to n on the API
// server, as someone with kubectl would.
func scaleBehindPaddocksBack(t *testing.T, h *harness, ns, name string, n int) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	_, err := h.cluster.Virt.PoolV1beta1().VirtualMachinePools(ns).Patch(h.ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("scale %s/%s to %d outside Paddock: %v", ns, name, n, err)
	}
}

func (h *harness) waitNoVMs(ns string) {
	h.t.Helper()
	for range 500 {
		list, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).List(h.ctx, metav1.ListOptions{})
		if err == nil && len(list.Items) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("VMs left in %s", ns)
}

func TestSimulatedPoolDelete(t *testing.T) {
	h := newSimHarness(t)
	r := h.submitPool("cirros", "nano", "batch", 2)
	h.wait(r.ID, store.StateRunning, poolReady(2))
	if err := h.st.RequestAction(h.ctx, r.ID, store.ActionDelete, store.UserActor(h.dev)); err != nil {
		t.Fatal(err)
	}
	r = h.wait(r.ID, store.StateDeleted, nil)
	if len(r.Members) != 0 {
		t.Errorf("members after delete: %+v", r.Members)
	}
	h.waitNoVMs("payments")
	u, err := h.st.TeamUsage(h.ctx, h.team.ID)
	if err != nil || u.VMs != 0 {
		t.Errorf("usage after delete: %+v %v", u, err)
	}
}

func TestExportPool(t *testing.T) {
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	r := store.Request{ID: 5, TeamName: "payments", Namespace: "payments", RequesterLogin: "dev", TemplateName: specs[0].Name,
		TemplateVersion: 1, Size: specs[0].Sizes[0].Name, Name: "workers", SSHPublicKey: sshKey, Pool: true, Replicas: 2}
	p, err := provision.RenderPool(specs[0], r)
	if err != nil {
		t.Fatal(err)
	}
	p.UID, p.ResourceVersion = "abc", "12"
	p.Status = poolv1.VirtualMachinePoolStatus{Replicas: 2, ReadyReplicas: 2}
	b, _ := yaml.Marshal(p)
	// Scaled to 5 since it was created: the export says 5.
	r.Replicas = 5
	r.VM = &store.VM{Namespace: "payments", Name: "workers", Manifest: string(b)}
	files, err := provision.Export("payments", []store.Request{r})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != "workers.yaml" || !strings.Contains(string(files[1].Data), "- workers.yaml") {
		t.Fatalf("files: %q", files)
	}
	var got poolv1.VirtualMachinePool
	if err := yaml.UnmarshalStrict(files[0].Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Kind != "VirtualMachinePool" || *got.Spec.Replicas != 5 || got.UID != "" || got.Labels[provision.LabelPool] != "workers" {
		t.Errorf("exported pool: %s", files[0].Data)
	}
	for _, bad := range []string{"status:", "uid:", "resourceVersion:"} {
		if strings.Contains(string(files[0].Data), bad) {
			t.Errorf("export has %s", bad)
		}
	}
}
