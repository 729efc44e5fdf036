package kubetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	kubevirtv1 "kubevirt.io/api/core/v1"
	poolv1beta1 "kubevirt.io/api/pool/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The tests of the Controllers option share a second environment, started
// by the first of them and stopped by run.
var (
	ctrlOnce  sync.Once
	ctrlEnv   *Env
	ctrlErr   error
	ctrlTook  time.Duration
	ctrlAdmin client.Client
)

func controllersEnv(t *testing.T) (*Env, client.Client) {
	t.Helper()
	needsCluster(t)
	ctrlOnce.Do(func() {
		start := time.Now()
		ctrlEnv, ctrlErr = Start(context.Background(), Controllers())
		ctrlTook = time.Since(start)
		if ctrlErr == nil {
			ctrlAdmin, ctrlErr = client.New(ctrlEnv.Config, client.Options{Scheme: scheme})
		}
	})
	if ctrlErr != nil {
		t.Fatalf("Start with Controllers: %v", ctrlErr)
	}
	t.Logf("Start with Controllers took %v", ctrlTook)
	return ctrlEnv, ctrlAdmin
}

// stopControllersEnv stops the shared environment of the Controllers tests,
// if one started.
func stopControllersEnv() error {
	if ctrlEnv == nil {
		return nil
	}
	return ctrlEnv.Stop()
}

func runStrategy(s kubevirtv1.VirtualMachineRunStrategy) *kubevirtv1.VirtualMachineRunStrategy {
	return &s
}

func testVMTemplate() *kubevirtv1.VirtualMachineInstanceTemplateSpec {
	return &kubevirtv1.VirtualMachineInstanceTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "kubetest"}},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Domain: kubevirtv1.DomainSpec{
				Resources: kubevirtv1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
				Devices: kubevirtv1.Devices{
					Disks: []kubevirtv1.Disk{{Name: "root", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}}},
					Interfaces: []kubevirtv1.Interface{{
						Name:                   "default",
						InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}},
					}},
				},
			},
			Networks: []kubevirtv1.Network{{Name: "default", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}}},
			Volumes: []kubevirtv1.Volume{{Name: "root", VolumeSource: kubevirtv1.VolumeSource{
				ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "quay.io/kubevirt/cirros-container-disk-demo"},
			}}},
		},
	}
}

// eventually polls check every 200ms until it returns nil, and fails t with
// its last error (and virt-controller's log) after timeout.
func eventually(t *testing.T, e *Env, timeout time.Duration, what string, check func(ctx context.Context) error) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		err := check(ctx)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v\nvirt-controller log (end):\n%s", what, timeout, err, e.VirtControllerLog())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// launcherPods lists the virt-launcher pods virt-controller made for vmi.
func launcherPods(ctx context.Context, c client.Client, vmi *kubevirtv1.VirtualMachineInstance) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(vmi.Namespace), client.MatchingLabels{kubevirtv1.CreatedByLabel: string(vmi.UID)}); err != nil {
		return nil, err
	}
	return pods.Items, nil
}

// runningWithIP checks that KubeVirt reports vm Running, with an instance it
// owns that runs in a launcher pod on the stand-in node and reports that
// pod's IP; it returns the instance and the pod.
func runningWithIP(ctx context.Context, c client.Client, ns, name string) (*kubevirtv1.VirtualMachineInstance, *corev1.Pod, error) {
	vm := &kubevirtv1.VirtualMachine{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vm); err != nil {
		return nil, nil, err
	}
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vmi); err != nil {
		return nil, nil, fmt.Errorf("instance: %w (VM printableStatus %q)", err, vm.Status.PrintableStatus)
	}
	if ref := metav1.GetControllerOf(vmi); ref == nil || ref.UID != vm.UID {
		return nil, nil, fmt.Errorf("instance's controller is %v, want the VM %s", ref, vm.UID)
	}
	pods, err := launcherPods(ctx, c, vmi)
	if err != nil {
		return nil, nil, err
	}
	if len(pods) != 1 {
		return nil, nil, fmt.Errorf("%d launcher pods, want 1 (instance phase %s)", len(pods), vmi.Status.Phase)
	}
	pod := &pods[0]
	if ref := metav1.GetControllerOf(pod); ref == nil || ref.UID != vmi.UID {
		return nil, nil, fmt.Errorf("launcher pod's controller is %v, want the instance %s", ref, vmi.UID)
	}
	if pod.Spec.NodeName != StandInNodeName || pod.Status.PodIP == "" {
		return nil, nil, fmt.Errorf("launcher pod on %q with IP %q", pod.Spec.NodeName, pod.Status.PodIP)
	}
	if vmi.Status.Phase != kubevirtv1.Running {
		return nil, nil, fmt.Errorf("instance phase %s", vmi.Status.Phase)
	}
	if len(vmi.Status.Interfaces) != 1 || vmi.Status.Interfaces[0].IP != pod.Status.PodIP {
		return nil, nil, fmt.Errorf("instance interfaces %+v, want one with the pod's IP %s", vmi.Status.Interfaces, pod.Status.PodIP)
	}
	if vm.Status.PrintableStatus != kubevirtv1.VirtualMachineStatusRunning || !vm.Status.Ready {
		return nil, nil, fmt.Errorf("VM printableStatus %q ready %v, want Running and ready", vm.Status.PrintableStatus, vm.Status.Ready)
	}
	return vmi, pod, nil
}

// gone checks that obj no longer exists.
func gone(ctx context.Context, c client.Client, obj client.Object) error {
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%T %s still exists (deleting: %v, finalizers %v)", obj, obj.GetName(), obj.GetDeletionTimestamp() != nil, obj.GetFinalizers())
}

// TestVirtControllerRunsAVMWithNodeAndVirtHandlerStandIns: a real
// kube-apiserver with KubeVirt's webhooks, KubeVirt v1.8.0's real
// virt-controller and a real kube-controller-manager; kubelet and
// virt-handler are stood in for (StandInNode, StandInVirtHandler). A VM
// created Always gets its instance and launcher pod from virt-controller,
// becomes Running with the pod's IP; Halted stops it (instance and pod
// gone, printableStatus Stopped); a foreground delete is finished by the
// garbage collector.
func TestVirtControllerRunsAVMWithNodeAndVirtHandlerStandIns(t *testing.T) {
	e, c := controllersEnv(t)
	ctx := context.Background()
	ns, err := e.CreateNamespace(ctx, "vc-vm")
	if err != nil {
		t.Fatal(err)
	}
	vm := &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vm1"},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: runStrategy(kubevirtv1.RunStrategyAlways),
			Template:    testVMTemplate(),
		},
	}
	// The API server admits pods only once the namespace's default
	// ServiceAccount exists (kube-controller-manager creates it).
	eventually(t, e, time.Minute, "default ServiceAccount", func(ctx context.Context) error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
	})
	if err := c.Create(ctx, vm); err != nil {
		t.Fatal(err)
	}

	var vmi *kubevirtv1.VirtualMachineInstance
	var pod *corev1.Pod
	eventually(t, e, 2*time.Minute, "VM Running", func(ctx context.Context) error {
		var err error
		vmi, pod, err = runningWithIP(ctx, c, ns, vm.Name)
		return err
	})
	t.Logf("VM Running: instance %s, launcher pod %s on %s, IP %s", vmi.UID, pod.Name, pod.Spec.NodeName, pod.Status.PodIP)
	if !strings.HasPrefix(pod.Name, "virt-launcher-"+vm.Name+"-") {
		t.Errorf("launcher pod %s, want virt-launcher-%s-…", pod.Name, vm.Name)
	}

	// Stop.
	if err := c.Get(ctx, client.ObjectKeyFromObject(vm), vm); err != nil {
		t.Fatal(err)
	}
	vm.Spec.RunStrategy = runStrategy(kubevirtv1.RunStrategyHalted)
	if err := c.Update(ctx, vm); err != nil {
		t.Fatal(err)
	}
	eventually(t, e, 2*time.Minute, "VM Stopped", func(ctx context.Context) error {
		if err := gone(ctx, c, vmi.DeepCopy()); err != nil {
			return err
		}
		if err := gone(ctx, c, pod.DeepCopy()); err != nil {
			return err
		}
		got := &kubevirtv1.VirtualMachine{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(vm), got); err != nil {
			return err
		}
		if got.Status.PrintableStatus != kubevirtv1.VirtualMachineStatusStopped {
			return fmt.Errorf("printableStatus %q", got.Status.PrintableStatus)
		}
		return nil
	})

	// Start again, then delete in the foreground while it runs.
	// virt-controller writes the VM's status at the same time: retry on a conflict.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(vm), vm); err != nil {
			return err
		}
		vm.Spec.RunStrategy = runStrategy(kubevirtv1.RunStrategyAlways)
		return c.Update(ctx, vm)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, e, 2*time.Minute, "VM Running again", func(ctx context.Context) error {
		var err error
		vmi, pod, err = runningWithIP(ctx, c, ns, vm.Name)
		return err
	})
	if err := c.Delete(ctx, vm, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	eventually(t, e, 2*time.Minute, "VM, instance and pod deleted", func(ctx context.Context) error {
		for _, o := range []client.Object{pod.DeepCopy(), vmi.DeepCopy(), vm.DeepCopy()} {
			if err := gone(ctx, c, o); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestVirtControllerRunsAPoolWithNodeAndVirtHandlerStandIns: the same
// cluster (real API server, virt-controller, kube-controller-manager;
// kubelet and virt-handler stood in for). KubeVirt's pool controller makes
// two member VMs owned by the pool, each runs, readyReplicas becomes 2; a
// foreground delete of the pool is finished by the garbage collector.
func TestVirtControllerRunsAPoolWithNodeAndVirtHandlerStandIns(t *testing.T) {
	e, c := controllersEnv(t)
	ctx := context.Background()
	ns, err := e.CreateNamespace(ctx, "vc-pool")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, e, time.Minute, "default ServiceAccount", func(ctx context.Context) error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
	})
	labels := map[string]string{"kubetest/pool": "p1"}
	replicas := int32(2)
	pool := &poolv1beta1.VirtualMachinePool{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p1"},
		Spec: poolv1beta1.VirtualMachinePoolSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			VirtualMachineTemplate: &poolv1beta1.VirtualMachineTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: kubevirtv1.VirtualMachineSpec{
					RunStrategy: runStrategy(kubevirtv1.RunStrategyAlways),
					Template:    testVMTemplate(),
				},
			},
		},
	}
	pool.Spec.VirtualMachineTemplate.Spec.Template.ObjectMeta.Labels = labels
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}

	var members []kubevirtv1.VirtualMachine
	eventually(t, e, 3*time.Minute, "pool of 2 running members", func(ctx context.Context) error {
		var vms kubevirtv1.VirtualMachineList
		if err := c.List(ctx, &vms, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(vms.Items) != 2 {
			return fmt.Errorf("%d member VMs", len(vms.Items))
		}
		for _, vm := range vms.Items {
			if ref := metav1.GetControllerOf(&vm); ref == nil || ref.UID != pool.UID {
				return fmt.Errorf("VM %s controller %v, want the pool", vm.Name, ref)
			}
			if _, _, err := runningWithIP(ctx, c, ns, vm.Name); err != nil {
				return fmt.Errorf("VM %s: %w", vm.Name, err)
			}
		}
		got := &poolv1beta1.VirtualMachinePool{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(pool), got); err != nil {
			return err
		}
		if got.Status.ReadyReplicas != 2 {
			return fmt.Errorf("pool readyReplicas %d", got.Status.ReadyReplicas)
		}
		members = vms.Items
		return nil
	})
	for _, vm := range members {
		t.Logf("member %s", vm.Name)
	}

	if err := c.Delete(ctx, pool, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	eventually(t, e, 2*time.Minute, "pool and members deleted", func(ctx context.Context) error {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(pods.Items) != 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		var vmis kubevirtv1.VirtualMachineInstanceList
		if err := c.List(ctx, &vmis, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(vmis.Items) != 0 {
			return fmt.Errorf("%d instances left", len(vmis.Items))
		}
		for i := range members {
			if err := gone(ctx, c, &members[i]); err != nil {
				return err
			}
		}
		return gone(ctx, c, pool.DeepCopy())
	})
}

// TestVirtControllerIsRestartedWhenItExitsOnPurpose: virt-controller (real,
// KubeVirt v1.8.0) exits on purpose when the DataVolume API goes or comes
// back, to start again with or without its CDI informers; the harness starts
// it again each time, and the restarted virt-controller runs a VM (kubelet
// and virt-handler stood in for).
func TestVirtControllerIsRestartedWhenItExitsOnPurpose(t *testing.T) {
	e, c := controllersEnv(t)
	ctx := context.Background()
	crds, err := embeddedCRDs()
	if err != nil {
		t.Fatal(err)
	}
	var dv *apiextensionsv1.CustomResourceDefinition
	for _, crd := range crds {
		if crd.Name == "datavolumes.cdi.kubevirt.io" {
			dv = crd
		}
	}
	if dv == nil {
		t.Fatal("no DataVolume CRD embedded")
	}
	restartedAfter := func(what string, starts int) {
		t.Helper()
		eventually(t, e, 2*time.Minute, what, func(context.Context) error {
			if got := e.VirtControllerStarts(); got <= starts {
				return fmt.Errorf("virt-controller started %d times", got)
			}
			return nil
		})
		if err := e.waitVirtControllerLeading(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	starts := e.VirtControllerStarts()
	if err := c.Delete(ctx, dv.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	restartedAfter("restart once the DataVolume API is gone", starts)
	eventually(t, e, time.Minute, "DataVolume CRD deleted", func(ctx context.Context) error {
		return gone(ctx, c, dv.DeepCopy())
	})

	starts = e.VirtControllerStarts()
	if err := c.Create(ctx, dv.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if err := waitEstablished(ctx, e.Config, []*apiextensionsv1.CustomResourceDefinition{dv}); err != nil {
		t.Fatal(err)
	}
	restartedAfter("restart once the DataVolume API is back", starts)
	t.Logf("virt-controller started %d times", e.VirtControllerStarts())

	ns, err := e.CreateNamespace(ctx, "vc-restart")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, e, time.Minute, "default ServiceAccount", func(ctx context.Context) error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
	})
	vm := &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "after-restart"},
		Spec:       kubevirtv1.VirtualMachineSpec{RunStrategy: runStrategy(kubevirtv1.RunStrategyAlways), Template: testVMTemplate()},
	}
	if err := c.Create(ctx, vm); err != nil {
		t.Fatal(err)
	}
	eventually(t, e, 2*time.Minute, "VM Running after the restarts", func(ctx context.Context) error {
		_, _, err := runningWithIP(ctx, c, ns, vm.Name)
		return err
	})
}

// TestVirtControllerScalesAPoolDownByItsSortPolicy: KubeVirt's own pool
// controller (real; kubelet and virt-handler stood in for) chooses which
// members go on scale-down by the pool's scale-in sort policy: with
// DescendingOrder, 3 → 1 keeps the member of index 0. (Without a policy
// KubeVirt v1.8.0 picks at random.)
func TestVirtControllerScalesAPoolDownByItsSortPolicy(t *testing.T) {
	e, c := controllersEnv(t)
	ctx := context.Background()
	ns, err := e.CreateNamespace(ctx, "vc-scale")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, e, time.Minute, "default ServiceAccount", func(ctx context.Context) error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
	})
	labels := map[string]string{"kubetest/pool": "s1"}
	replicas := int32(3)
	descending := poolv1beta1.VirtualMachinePoolSortPolicyDescendingOrder
	pool := &poolv1beta1.VirtualMachinePool{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s1"},
		Spec: poolv1beta1.VirtualMachinePoolSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			ScaleInStrategy: &poolv1beta1.VirtualMachinePoolScaleInStrategy{
				Proactive: &poolv1beta1.VirtualMachinePoolProactiveScaleInStrategy{
					SelectionPolicy: &poolv1beta1.VirtualMachinePoolSelectionPolicy{SortPolicy: &descending},
				},
			},
			VirtualMachineTemplate: &poolv1beta1.VirtualMachineTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       kubevirtv1.VirtualMachineSpec{RunStrategy: runStrategy(kubevirtv1.RunStrategyAlways), Template: testVMTemplate()},
			},
		},
	}
	pool.Spec.VirtualMachineTemplate.Spec.Template.ObjectMeta.Labels = labels
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	members := func(ctx context.Context) ([]string, error) {
		var vms kubevirtv1.VirtualMachineList
		if err := c.List(ctx, &vms, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		// A member being deleted (foreground: its instance and launcher
		// pod go first) has left the pool already.
		var names []string
		for _, vm := range vms.Items {
			if vm.DeletionTimestamp == nil {
				names = append(names, vm.Name)
			}
		}
		return names, nil
	}
	eventually(t, e, 3*time.Minute, "3 members ready", func(ctx context.Context) error {
		got := &poolv1beta1.VirtualMachinePool{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(pool), got); err != nil {
			return err
		}
		if got.Status.ReadyReplicas != 3 {
			return fmt.Errorf("readyReplicas %d", got.Status.ReadyReplicas)
		}
		return nil
	})
	one := int32(1)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got := &poolv1beta1.VirtualMachinePool{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(pool), got); err != nil {
			return err
		}
		got.Spec.Replicas = &one
		return c.Update(ctx, got)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, e, 2*time.Minute, "scaled down to s1-0", func(ctx context.Context) error {
		names, err := members(ctx)
		if err != nil {
			return err
		}
		if len(names) != 1 || names[0] != "s1-0" {
			return fmt.Errorf("members %v, want [s1-0]", names)
		}
		return nil
	})
}
