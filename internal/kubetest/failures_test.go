package kubetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/containerizeddataimporter"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"paddock/internal/provision"
	"paddock/internal/store"
)

// The tests in this file check Paddock's explanation of a VM that will not
// come up against what KubeVirt really writes. Paddock renders the VM
// (provision.Render); KubeVirt v1.8.0's own virt-controller, on a real API
// server, writes its status; the component that fails is stood in for,
// doing what the real one does in that failure: the scheduler
// (StandInNode's fit check), kubelet's image pull (StandInNode.CannotPull),
// CDI's import (StandInCDIImporter). provision.Observe then reads the VM,
// its instance and its root DataVolume as the API server has them.

// failureTimeout bounds each wait for virt-controller: it reacts within a
// second on an idle machine.
const failureTimeout = 45 * time.Second

// Paddock's sentences for the failures (internal/provision/status.go),
// spelled out so that a changed sentence is a changed test.
const (
	unschedulableReason = "No node in the cluster can run this VM right now (not enough free CPU or memory, or no node matches its requirements). Try a smaller size, or ask the platform team for capacity."
	errImagePullReason  = "The VM's disk image could not be pulled. The image named by the template may not exist, or its registry is unreachable; tell the platform team which template you used."
	pullBackOffReason   = "The VM's disk image could not be pulled, and the cluster is backing off before trying again. The image named by the template may not exist, or its registry is unreachable."
	dataVolumeReason    = "Importing the VM's disk failed. The image URL may be wrong or unreachable, or the storage could not be provisioned."
	provisioningReason  = "Preparing the VM's disks."
)

// failureVM renders, as Paddock does, the VM of a request for template
// spec in size in namespace ns, and creates it once the namespace can
// have pods.
func failureVM(t *testing.T, e *Env, c client.Client, ns, name string, spec store.TemplateSpec, size string) *kubevirtv1.VirtualMachine {
	t.Helper()
	ctx := context.Background()
	vm, err := provision.Render(spec, store.Request{
		ID: 1, Name: name, Namespace: ns, TeamName: "team", RequesterLogin: "dev",
		TemplateName: spec.Name, TemplateVersion: 1, Size: size,
		SSHPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLE dev@example",
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, e, time.Minute, "default ServiceAccount", func(ctx context.Context) error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
	})
	if err := c.Create(ctx, vm); err != nil {
		t.Fatal(err)
	}
	// Leave the shared node as it was: no pod of this test stays on it.
	t.Cleanup(func() { _ = c.Delete(context.Background(), vm) })
	return vm
}

// failureTemplate is a template of one size, nano unless size is given.
func failureTemplate(image store.ImageSource, size *store.Size) store.TemplateSpec {
	s := store.Size{Name: "nano", CPU: 1, MemoryMiB: 128}
	if size != nil {
		s = *size
	}
	return store.TemplateSpec{
		Name: "failure", DisplayName: "Failure", OSFamily: "cirros", SSHUser: "cirros",
		Image: image, Sizes: []store.Size{s}, RootDiskGiB: 1, MaxLeaseDays: 7,
	}
}

// observed is what Paddock makes of VM ns/name: provision.Observe on the
// VM, its instance and its root DataVolume as the API server has them
// (either of the last two may be absent).
func observed(ctx context.Context, c client.Client, cdi containerizeddataimporter.Interface, ns, name string) (store.Observation, *kubevirtv1.VirtualMachine, error) {
	vm := &kubevirtv1.VirtualMachine{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vm); err != nil {
		return store.Observation{}, nil, err
	}
	var vmi *kubevirtv1.VirtualMachineInstance
	got := &kubevirtv1.VirtualMachineInstance{}
	switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, got); {
	case err == nil:
		vmi = got
	case !apierrors.IsNotFound(err):
		return store.Observation{}, nil, err
	}
	var dv *cdiv1.DataVolume
	switch got, err := cdi.CdiV1beta1().DataVolumes(ns).Get(ctx, provision.DataVolumeName(name), metav1.GetOptions{}); {
	case err == nil:
		dv = got
	case !apierrors.IsNotFound(err):
		return store.Observation{}, nil, err
	}
	return provision.Observe(vm, vmi, dv), vm, nil
}

// explains checks that the VM has printableStatus status and that Paddock
// explains it as state, reason and message.
func explains(o store.Observation, vm *kubevirtv1.VirtualMachine, status kubevirtv1.VirtualMachinePrintableStatus, state store.State, reason, message string) error {
	if vm.Status.PrintableStatus != status {
		return fmt.Errorf("printableStatus %q, want %q (conditions %+v)", vm.Status.PrintableStatus, status, vm.Status.Conditions)
	}
	var errs []error
	if o.Status != string(status) || o.State != state {
		errs = append(errs, fmt.Errorf("observed status %q state %q, want %q %q", o.Status, o.State, status, state))
	}
	if o.Reason != reason {
		errs = append(errs, fmt.Errorf("reason:\n  %q\nwant\n  %q", o.Reason, reason))
	}
	if o.Message != message {
		errs = append(errs, fmt.Errorf("message:\n  %q\nwant\n  %q", o.Message, message))
	}
	return errors.Join(errs...)
}

// vmCondition returns vm's condition of type typ, or nil.
func vmCondition(vm *kubevirtv1.VirtualMachine, typ string) *kubevirtv1.VirtualMachineCondition {
	for i, c := range vm.Status.Conditions {
		if string(c.Type) == typ {
			return &vm.Status.Conditions[i]
		}
	}
	return nil
}

// logConditions records what virt-controller wrote on the VM.
func logConditions(t *testing.T, vm *kubevirtv1.VirtualMachine) {
	t.Helper()
	t.Logf("VM %s: printableStatus %q", vm.Name, vm.Status.PrintableStatus)
	for _, c := range vm.Status.Conditions {
		t.Logf("  condition %s=%s reason %q message %q", c.Type, c.Status, c.Reason, c.Message)
	}
}

// TestVirtControllerReportsUnschedulableWithSchedulerStandIn: a VM bigger
// than any node. Real: the API server with KubeVirt's webhooks,
// virt-controller (which makes the launcher pod and writes the VM's
// status), Paddock's Render and Observe. Stood in for: the scheduler,
// which finds the pod's memory request above the one node's allocatable,
// leaves it unbound and marks it as the real scheduler does. virt-controller
// copies the pod's PodScheduled condition to the instance and the VM and
// reports ErrorUnschedulable; Paddock fails the request with its sentence
// for it and keeps the scheduler's own words as the VM's message.
func TestVirtControllerReportsUnschedulableWithSchedulerStandIn(t *testing.T) {
	e, c := controllersEnv(t)
	ctx := context.Background()
	cdi, err := containerizeddataimporter.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := e.CreateNamespace(ctx, "vc-unsched")
	if err != nil {
		t.Fatal(err)
	}
	// Twice the node's memory: no node fits it.
	nodeMemory := StandInNodeAllocatable()[corev1.ResourceMemory]
	huge := &store.Size{Name: "huge", CPU: 1, MemoryMiB: 2 * int(nodeMemory.Value()>>20)}
	spec := failureTemplate(store.ImageSource{ContainerDisk: "quay.io/kubevirt/cirros-container-disk-demo:v1.8.0"}, huge)
	vm := failureVM(t, e, c, ns, "too-big", spec, "huge")

	const schedulerSays = "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
	var got *kubevirtv1.VirtualMachine
	eventually(t, e, failureTimeout, "VM ErrorUnschedulable, explained", func(ctx context.Context) error {
		o, v, err := observed(ctx, c, cdi, ns, vm.Name)
		if err != nil {
			return err
		}
		got = v
		return explains(o, v, kubevirtv1.VirtualMachineStatusUnschedulable, store.StateFailed, unschedulableReason, schedulerSays)
	})
	logConditions(t, got)
	if cond := vmCondition(got, string(corev1.PodScheduled)); cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable {
		t.Errorf("VM's PodScheduled condition %+v, want False, Unschedulable", cond)
	}
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(vm), vmi); err != nil {
		t.Fatal(err)
	}
	pods, err := launcherPods(ctx, c, vmi)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 || pods[0].Spec.NodeName != "" {
		t.Fatalf("launcher pods %d, want 1 unbound", len(pods))
	}
	t.Logf("instance phase %s; launcher pod requests %v", vmi.Status.Phase, podRequests(&pods[0]))
	if vmi.Status.Phase != kubevirtv1.Scheduling {
		t.Errorf("instance phase %s, want Scheduling", vmi.Status.Phase)
	}
}

// TestVirtControllerReportsImagePullFailuresWithKubeletStandIn: a VM whose
// container disk is in a registry whose name does not resolve. Real: the
// API server, virt-controller, Paddock's Render and Observe. Stood in for:
// the scheduler (binds the pod) and kubelet, which cannot pull the disk's
// image: it leaves the pod Pending with the disk's init container waiting
// in ErrImagePull, then ImagePullBackOff, with kubelet's messages.
// virt-controller reports each on the instance's Synchronized condition
// and as the VM's printableStatus, ErrImagePull then ImagePullBackOff;
// Paddock fails the request with its sentence for each and keeps kubelet's
// message as the VM's.
func TestVirtControllerReportsImagePullFailuresWithKubeletStandIn(t *testing.T) {
	e, c := controllersEnv(t)
	ctx := context.Background()
	cdi, err := containerizeddataimporter.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := e.CreateNamespace(ctx, "vc-pull")
	if err != nil {
		t.Fatal(err)
	}
	image := UnresolvableRegistry + "/paddock/missing-disk:1"
	vm := failureVM(t, e, c, ns, "no-image", failureTemplate(store.ImageSource{ContainerDisk: image}, nil), "nano")

	pullErr := standInPull(image)
	if pullErr == nil {
		t.Fatalf("the stand-in node pulls %s", image)
	}
	kubeletSays := pullErr.Error()
	var got *kubevirtv1.VirtualMachine
	eventually(t, e, failureTimeout, "VM ErrImagePull, explained", func(ctx context.Context) error {
		o, v, err := observed(ctx, c, cdi, ns, vm.Name)
		if err != nil {
			return err
		}
		got = v
		return explains(o, v, kubevirtv1.VirtualMachineStatusErrImagePull, store.StateFailed, errImagePullReason, kubeletSays)
	})
	logConditions(t, got)
	if cond := vmCondition(got, string(kubevirtv1.VirtualMachineInstanceSynchronized)); cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != "ErrImagePull" {
		t.Errorf("VM's Synchronized condition %+v, want False, ErrImagePull", cond)
	}

	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(vm), vmi); err != nil {
		t.Fatal(err)
	}
	pods, err := launcherPods(ctx, c, vmi)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 {
		t.Fatalf("%d launcher pods, want 1", len(pods))
	}
	for _, s := range append(append([]corev1.ContainerStatus{}, pods[0].Status.InitContainerStatuses...), pods[0].Status.ContainerStatuses...) {
		if w := s.State.Waiting; w != nil {
			t.Logf("launcher pod container %s (%s) waiting: %s", s.Name, s.Image, w.Reason)
		}
	}

	backOff := fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", image, kubeletSays)
	eventually(t, e, failureTimeout, "VM ImagePullBackOff, explained", func(ctx context.Context) error {
		o, v, err := observed(ctx, c, cdi, ns, vm.Name)
		if err != nil {
			return err
		}
		got = v
		return explains(o, v, kubevirtv1.VirtualMachineStatusImagePullBackOff, store.StateFailed, pullBackOffReason, backOff)
	})
	logConditions(t, got)
	if err := c.Get(ctx, client.ObjectKeyFromObject(vm), vmi); err != nil {
		t.Fatal(err)
	}
	if vmi.Status.Phase != kubevirtv1.Scheduling {
		t.Errorf("instance phase %s, want Scheduling", vmi.Status.Phase)
	}
}

// TestVirtControllerReportsImportsThatNeverFinishWithCDIImporterStandIn:
// two VMs whose root disk CDI imports over HTTP. Real: the API server,
// virt-controller (which creates each VM's DataVolume from its template and
// writes the VM's status from the DataVolume's), Paddock's Render and
// Observe. Stood in for: CDI's import, which writes the DataVolume's status
// as CDI does when the importer pod cannot be scheduled (the import never
// starts: KubeVirt shows Provisioning for as long as it lasts, and Paddock
// says it is preparing the disks and keeps CDI's words as the VM's
// message) and when the importer keeps failing (a URL that answers 404:
// KubeVirt shows DataVolumeError, and Paddock fails the request and keeps
// the importer's message).
func TestVirtControllerReportsImportsThatNeverFinishWithCDIImporterStandIn(t *testing.T) {
	e, c := controllersEnv(t)
	ctx := context.Background()
	cdi, err := containerizeddataimporter.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	importer := &StandInCDIImporter{Client: cdi}
	ns, err := e.CreateNamespace(ctx, "vc-import")
	if err != nil {
		t.Fatal(err)
	}
	spec := failureTemplate(store.ImageSource{HTTP: "https://images.example.invalid/paddock/missing.qcow2"}, nil)
	stuck := failureVM(t, e, c, ns, "never-starts", spec, "nano")
	failing := failureVM(t, e, c, ns, "keeps-failing", spec, "nano")

	// virt-controller creates each DataVolume; until CDI writes a status,
	// KubeVirt shows Provisioning.
	for _, vm := range []*kubevirtv1.VirtualMachine{stuck, failing} {
		eventually(t, e, failureTimeout, vm.Name+" Provisioning with its DataVolume", func(ctx context.Context) error {
			o, v, err := observed(ctx, c, cdi, ns, vm.Name)
			if err != nil {
				return err
			}
			dv, err := cdi.CdiV1beta1().DataVolumes(ns).Get(ctx, provision.DataVolumeName(vm.Name), metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("DataVolume: %w", err)
			}
			if !metav1.IsControlledBy(dv, v) {
				return fmt.Errorf("DataVolume's controller %v, want the VM", metav1.GetControllerOf(dv))
			}
			return explains(o, v, kubevirtv1.VirtualMachineStatusProvisioning, store.StateProvisioning, provisioningReason, "")
		})
	}

	if err := importer.ImporterUnschedulable(ctx, ns, provision.DataVolumeName(stuck.Name)); err != nil {
		t.Fatal(err)
	}
	var got *kubevirtv1.VirtualMachine
	eventually(t, e, failureTimeout, "import that never starts, explained", func(ctx context.Context) error {
		o, v, err := observed(ctx, c, cdi, ns, stuck.Name)
		if err != nil {
			return err
		}
		got = v
		return explains(o, v, kubevirtv1.VirtualMachineStatusProvisioning, store.StateProvisioning, provisioningReason, "Importer pod cannot be scheduled")
	})
	logConditions(t, got)

	const importerSays = "Unable to connect to http data source: expected status code 200, got 404. Status: 404 Not Found"
	if err := importer.ImporterKeepsFailing(ctx, ns, provision.DataVolumeName(failing.Name), importerSays, 3); err != nil {
		t.Fatal(err)
	}
	eventually(t, e, failureTimeout, "failing import, explained", func(ctx context.Context) error {
		o, v, err := observed(ctx, c, cdi, ns, failing.Name)
		if err != nil {
			return err
		}
		got = v
		return explains(o, v, kubevirtv1.VirtualMachineStatusDataVolumeError, store.StateFailed, dataVolumeReason, importerSays)
	})
	logConditions(t, got)
	// KubeVirt starts no instance while a disk is not imported.
	for _, vm := range []*kubevirtv1.VirtualMachine{stuck, failing} {
		if err := gone(ctx, c, &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: vm.Name}}); err != nil {
			t.Errorf("instance of %s: %v", vm.Name, err)
		}
	}
}
