package provision_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

// These tests run on the real kube-apiserver with KubeVirt's CRDs and
// admission webhooks, as the provisioner's RBAC-limited user, each twice:
// once with the status of every VM, the request's and the decoys', written
// by the Simulator standing in for virt-controller (see kube_test.go), and
// once, "OnRealVirtControllerWithNodeStandIns", on the cluster with
// KubeVirt's own virt-controller and kube-controller-manager, where
// KubeVirt runs the decoys too (kubelet and virt-handler stood in for).

// TestKubeWatcherIgnoresCopiesOfARequestsLabel: anyone who may create a VM
// may copy Paddock's labels onto it. With the watcher watching every
// namespace, as in production, a VM made by hand with a running request's
// labels, in another namespace under the same name and in the request's
// namespace under another name, is ignored while it runs with an IP of its
// own, is stopped, and is deleted: the request's state, IP and history stay
// as they were, and each is logged and counted as foreign. The request's
// own VM deleted outside Paddock is still noticed.
func TestKubeWatcherIgnoresCopiesOfARequestsLabel(t *testing.T) {
	env := realCluster(t)
	h, ns := newKubeHarnessWatching(t, env, nil, true)
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	other, err := env.CreateNamespace(h.ctx, "decoy")
	if err != nil {
		t.Fatal(err)
	}
	copiesOfARequestsLabel(t, h, admin, ns, other, false)
}

// TestKubeWatcherIgnoresCopiesOfARequestsLabelOnRealVirtControllerWithNodeStandIns
// is TestKubeWatcherIgnoresCopiesOfARequestsLabel on the cluster with
// KubeVirt's controllers: virt-controller runs and stops the copies in
// both namespaces (their instances and launcher pods carry the copied
// labels too), and the garbage collector removes what they leave.
func TestKubeWatcherIgnoresCopiesOfARequestsLabelOnRealVirtControllerWithNodeStandIns(t *testing.T) {
	h, ns, admin := newControllersHarnessOn(t, "watch", nil, true)
	other := controllersNamespace(t, h.ctx, controllersCluster(t), admin, "decoy")
	copiesOfARequestsLabel(t, h, admin, ns, other, true)
}

// copiesOfARequestsLabel is the body of the tests above; controllers says
// KubeVirt's virt-controller runs in every namespace (with the Simulator,
// only the request's namespace has a controller, and the test plays it in
// the other).
func copiesOfARequestsLabel(t *testing.T, h *harness, admin *provision.Cluster, ns, other string, controllers bool) {
	r := h.submit("cirros", "nano", "web-1")
	r = h.wait(r.ID, store.StateRunning, hasIP)
	before := len(h.events(r.ID))
	changed := func() string {
		got, err := h.st.Request(h.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.StateRunning || got.VM.IP != r.VM.IP || got.VM.UID != r.VM.UID || got.VM.Status != "Running" {
			return fmt.Sprintf("request is %s, VM %s %q ip %s; want running, VM %s ip %s", got.State,
				got.VM.UID, got.VM.Status, got.VM.IP, r.VM.UID, r.VM.IP)
		}
		if evs := h.events(r.ID); len(evs) != before {
			return fmt.Sprintf("new events %+v", evs[before:])
		}
		return ""
	}
	ignored := func(ns, name string, since time.Time, step string) {
		t.Helper()
		h.ignored(ns, name, since, step, changed)
	}

	// In another namespace, under the request's name: running, stopped,
	// deleted (with the Simulator no controller runs there: the test plays
	// it, as admin).
	spec := templateNamed(t, "cirros")
	decoy := renderFor(t, spec, r, other, "web-1")
	since := time.Now()
	created, err := admin.Virt.KubevirtV1().VirtualMachines(other).Create(h.ctx, decoy, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if controllers {
		waitVMStatus(t, h, admin, other, "web-1", virtv1.VirtualMachineStatusRunning)
	} else {
		setVMStatus(t, h, admin, created, virtv1.VirtualMachineStatusRunning)
		runInstance(t, h, admin, created, "10.99.0.1")
	}
	ignored(other, "web-1", since, "a copy in another namespace runs")

	since = time.Now()
	halted := `{"spec":{"runStrategy":"Halted"}}`
	if _, err := admin.Virt.KubevirtV1().VirtualMachines(other).Patch(h.ctx, "web-1", types.MergePatchType, []byte(halted), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if controllers {
		waitVMStatus(t, h, admin, other, "web-1", virtv1.VirtualMachineStatusStopped)
	} else {
		if err := admin.Virt.KubevirtV1().VirtualMachineInstances(other).Delete(h.ctx, "web-1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := admin.Virt.KubevirtV1().VirtualMachines(other).Get(h.ctx, "web-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		setVMStatus(t, h, admin, got, virtv1.VirtualMachineStatusStopped)
	}
	ignored(other, "web-1", since, "the copy in another namespace stops")

	since = time.Now()
	if err := admin.Virt.KubevirtV1().VirtualMachines(other).Delete(h.ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ignored(other, "web-1", since, "the copy in another namespace is deleted")

	// In the request's namespace under another name: virt-controller, or
	// the Simulator standing in for it, runs it like any VM, and it gets
	// its own IP.
	copyVM := renderFor(t, spec, r, ns, "web-1-copy")
	since = time.Now()
	if _, err := admin.Virt.KubevirtV1().VirtualMachines(ns).Create(h.ctx, copyVM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitVMStatus(t, h, admin, ns, "web-1-copy", virtv1.VirtualMachineStatusRunning)
	ignored(ns, "web-1-copy", since, "a copy in the namespace runs")

	since = time.Now()
	if _, err := admin.Virt.KubevirtV1().VirtualMachines(ns).Patch(h.ctx, "web-1-copy", types.MergePatchType, []byte(halted), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitVMStatus(t, h, admin, ns, "web-1-copy", virtv1.VirtualMachineStatusStopped)
	ignored(ns, "web-1-copy", since, "the copy in the namespace stops")

	since = time.Now()
	if err := admin.Virt.KubevirtV1().VirtualMachines(ns).Delete(h.ctx, "web-1-copy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ignored(ns, "web-1-copy", since, "the copy in the namespace is deleted")

	if n := counterValue(t, h, "paddock_watch_foreign_objects_total", "kind", "VirtualMachine"); n < 6 {
		t.Errorf("paddock_watch_foreign_objects_total{kind=VirtualMachine} = %v, want at least 6", n)
	}

	// The request's own VM deleted behind Paddock's back is drift.
	if err := admin.Virt.KubevirtV1().VirtualMachines(ns).Delete(h.ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.wait(r.ID, store.StateDeleted, nil)
	evs := h.events(r.ID)
	if last := evs[len(evs)-1]; last.Kind != "drift" {
		t.Errorf("last event after the VM was deleted: %+v", last)
	}
}

// TestKubeWatcherIgnoresCopiesOfAPoolsLabels: a VM made by hand with a
// pool's labels in the pool's namespace is not a member, and a pool made by
// hand with the same name and labels in another namespace is not the
// request's pool, whether it exists or is deleted.
func TestKubeWatcherIgnoresCopiesOfAPoolsLabels(t *testing.T) {
	env := realCluster(t)
	h, ns := newKubeHarnessWatching(t, env, nil, true)
	h.limit = 30 * time.Second
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	other, err := env.CreateNamespace(h.ctx, "decoy")
	if err != nil {
		t.Fatal(err)
	}
	copiesOfAPoolsLabels(t, h, admin, ns, other)
}

// TestKubeWatcherIgnoresCopiesOfAPoolsLabelsOnRealVirtControllerWithNodeStandIns
// is TestKubeWatcherIgnoresCopiesOfAPoolsLabels on the cluster with
// KubeVirt's controllers: virt-controller runs the hand-made VM, and its
// pool controller makes the copied pool's members in the other namespace,
// which the garbage collector removes with it.
func TestKubeWatcherIgnoresCopiesOfAPoolsLabelsOnRealVirtControllerWithNodeStandIns(t *testing.T) {
	h, ns, admin := newControllersHarnessOn(t, "watchpool", nil, true)
	other := controllersNamespace(t, h.ctx, controllersCluster(t), admin, "decoy")
	copiesOfAPoolsLabels(t, h, admin, ns, other)
}

// copiesOfAPoolsLabels is the body of the tests above.
func copiesOfAPoolsLabels(t *testing.T, h *harness, admin *provision.Cluster, ns, other string) {
	r := h.submitPool("cirros", "nano", "workers", 2)
	r = h.wait(r.ID, store.StateRunning, poolReady(2))
	before := len(h.events(r.ID))
	members := func(r store.Request) []string {
		var out []string
		for _, m := range r.Members {
			out = append(out, m.Name+" "+m.IP)
		}
		return out
	}
	changed := func() string {
		got, err := h.st.Request(h.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.StateRunning || got.VM.Status != r.VM.Status || !slices.Equal(members(got), members(r)) {
			return fmt.Sprintf("request is %s (%s), members %v; want running (%s), members %v", got.State,
				got.VM.Status, members(got), r.VM.Status, members(r))
		}
		if evs := h.events(r.ID); len(evs) != before {
			return fmt.Sprintf("new events %+v", evs[before:])
		}
		return ""
	}
	ignored := func(ns, name string, since time.Time, step string) {
		t.Helper()
		h.ignored(ns, name, since, step, changed)
	}
	spec := templateNamed(t, "cirros")

	// A VM with the pool's labels but no owner: virt-controller, or the
	// Simulator standing in for it, runs it.
	member := renderFor(t, spec, r, ns, "workers-7")
	member.Labels[provision.LabelPool] = "workers"
	member.Spec.Template.ObjectMeta.Labels[provision.LabelPool] = "workers"
	since := time.Now()
	if _, err := admin.Virt.KubevirtV1().VirtualMachines(ns).Create(h.ctx, member, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitVMStatus(t, h, admin, ns, "workers-7", virtv1.VirtualMachineStatusRunning)
	ignored(ns, "workers-7", since, "a VM with the pool's labels runs")

	// A pool of the same name and labels in another namespace.
	dr := r
	dr.Namespace = other
	decoy, err := provision.RenderPool(spec, dr)
	if err != nil {
		t.Fatal(err)
	}
	since = time.Now()
	if _, err := admin.Virt.PoolV1beta1().VirtualMachinePools(other).Create(h.ctx, decoy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ignored(other, "workers", since, "a copy of the pool in another namespace exists")
	since = time.Now()
	if err := admin.Virt.PoolV1beta1().VirtualMachinePools(other).Delete(h.ctx, "workers", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ignored(other, "workers", since, "the copy of the pool is deleted")

	if n := counterValue(t, h, "paddock_watch_foreign_objects_total", "kind", "VirtualMachinePool"); n < 2 {
		t.Errorf("paddock_watch_foreign_objects_total{kind=VirtualMachinePool} = %v, want at least 2", n)
	}
}

// ignored waits until the watcher has reported ns/name as foreign since
// since, then a little longer for the events queued behind that one,
// failing the test at step as soon as changed, which describes how the
// request differs from before, reports a difference.
func (h *harness) ignored(ns, name string, since time.Time, step string, changed func() string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(h.warnings.about("object", ns+"/"+name, since)) == 0 {
		if d := changed(); d != "" {
			h.t.Fatalf("%s: %s", step, d)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: the watcher did not report %s/%s as foreign", step, ns, name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if d := changed(); d != "" {
		h.t.Fatalf("%s: %s", step, d)
	}
}

func templateNamed(t *testing.T, name string) store.TemplateSpec {
	t.Helper()
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no template %s", name)
	return store.TemplateSpec{}
}

// renderFor renders the VM Paddock would make for r, placed in ns under
// name: a copy with every one of r's labels.
func renderFor(t *testing.T, spec store.TemplateSpec, r store.Request, ns, name string) *virtv1.VirtualMachine {
	t.Helper()
	r.Namespace, r.Name = ns, name
	vm, err := provision.Render(spec, r)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Labels[provision.LabelRequest] != strconv.FormatInt(r.ID, 10) {
		t.Fatalf("labels %v", vm.Labels)
	}
	return vm
}

// setVMStatus writes vm's printable status, as virt-controller does.
func setVMStatus(t *testing.T, h *harness, admin *provision.Cluster, vm *virtv1.VirtualMachine, st virtv1.VirtualMachinePrintableStatus) {
	t.Helper()
	vm = vm.DeepCopy()
	vm.Status.PrintableStatus = st
	vm.Status.Ready = st == virtv1.VirtualMachineStatusRunning
	vm.Status.Created = st == virtv1.VirtualMachineStatusRunning
	if _, err := admin.Virt.KubevirtV1().VirtualMachines(vm.Namespace).UpdateStatus(h.ctx, vm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// runInstance makes vm's running instance with address ip, as
// virt-controller and virt-handler do.
func runInstance(t *testing.T, h *harness, admin *provision.Cluster, vm *virtv1.VirtualMachine, ip string) {
	t.Helper()
	vmis := admin.Virt.KubevirtV1().VirtualMachineInstances(vm.Namespace)
	vmi, err := vmis.Create(h.ctx, &virtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{
			Name: vm.Name, Namespace: vm.Namespace, Labels: vm.Spec.Template.ObjectMeta.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(vm, virtv1.VirtualMachineGroupVersionKind)},
		},
		Spec:   vm.Spec.Template.Spec,
		Status: virtv1.VirtualMachineInstanceStatus{Phase: virtv1.Scheduling},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vmi.Status.Phase = virtv1.Running
	vmi.Status.NodeName = "node-1"
	vmi.Status.Interfaces = []virtv1.VirtualMachineInstanceNetworkInterface{{Name: "default", IP: ip, IPs: []string{ip}}}
	vmi.Status.Conditions = []virtv1.VirtualMachineInstanceCondition{{Type: virtv1.VirtualMachineInstanceReady, Status: corev1.ConditionTrue}}
	if _, err := vmis.Update(h.ctx, vmi, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitVMStatus waits until VM ns/name shows status st.
func waitVMStatus(t *testing.T, h *harness, admin *provision.Cluster, ns, name string, st virtv1.VirtualMachinePrintableStatus) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		vm, err := admin.Virt.KubevirtV1().VirtualMachines(ns).Get(h.ctx, name, metav1.GetOptions{})
		if err == nil && vm.Status.PrintableStatus == st {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM %s/%s: %v, want status %s", ns, name, err, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counterValue is the value of the counter name{label=value} in the
// harness's registry, 0 when it has none.
func counterValue(t *testing.T, h *harness, name, label, value string) float64 {
	t.Helper()
	fams, err := h.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
