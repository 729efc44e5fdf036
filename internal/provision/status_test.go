package provision

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"paddock/internal/store"
)

func vmWith(status virtv1.VirtualMachinePrintableStatus, rs virtv1.VirtualMachineRunStrategy, conds ...virtv1.VirtualMachineCondition) *virtv1.VirtualMachine {
	return &virtv1.VirtualMachine{
		Spec:   virtv1.VirtualMachineSpec{RunStrategy: &rs},
		Status: virtv1.VirtualMachineStatus{PrintableStatus: status, Conditions: conds},
	}
}

func TestObserve(t *testing.T) {
	running := &virtv1.VirtualMachineInstance{Status: virtv1.VirtualMachineInstanceStatus{
		Phase: virtv1.Running, Interfaces: []virtv1.VirtualMachineInstanceNetworkInterface{{Name: "default", IP: "10.1.2.3"}},
	}}
	noIP := &virtv1.VirtualMachineInstance{Status: virtv1.VirtualMachineInstanceStatus{Phase: virtv1.Running}}
	importing := &cdiv1.DataVolume{Status: cdiv1.DataVolumeStatus{Phase: cdiv1.ImportInProgress, Progress: "37.5%"}}
	now := metav1.Now()
	cases := []struct {
		name      string
		vm        *virtv1.VirtualMachine
		vmi       *virtv1.VirtualMachineInstance
		dv        *cdiv1.DataVolume
		state     store.State
		ip        string
		reasonHas string
		gone      bool
	}{
		{name: "absent", gone: true},
		{name: "deleted without finalizers", vm: &virtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}}, gone: true},
		{name: "new", vm: vmWith("", virtv1.RunStrategyAlways), state: store.StateProvisioning, reasonHas: "Waiting for KubeVirt"},
		{name: "provisioning", vm: vmWith(virtv1.VirtualMachineStatusProvisioning, virtv1.RunStrategyAlways), state: store.StateProvisioning, reasonHas: "disks"},
		{name: "importing", vm: vmWith(virtv1.VirtualMachineStatusProvisioning, virtv1.RunStrategyAlways), dv: importing, state: store.StateProvisioning, reasonHas: "37.5%"},
		{name: "waiting for volume", vm: vmWith(virtv1.VirtualMachineStatusWaitingForVolumeBinding, virtv1.RunStrategyAlways), state: store.StateProvisioning, reasonHas: "storage"},
		{name: "running", vm: vmWith(virtv1.VirtualMachineStatusRunning, virtv1.RunStrategyAlways), vmi: running, state: store.StateRunning, ip: "10.1.2.3"},
		{name: "running without ip", vm: vmWith(virtv1.VirtualMachineStatusRunning, virtv1.RunStrategyAlways), vmi: noIP, state: store.StateRunning, reasonHas: "IP address"},
		{name: "stopped", vm: vmWith(virtv1.VirtualMachineStatusStopped, virtv1.RunStrategyHalted), state: store.StateStopped},
		// virt-controller shows Stopped between a VM's creation (or a
		// restart) and its new instance; Always means one is coming.
		{name: "stopped for a moment before its instance", vm: vmWith(virtv1.VirtualMachineStatusStopped, virtv1.RunStrategyAlways), state: store.StateProvisioning, reasonHas: "Starting"},
		{name: "stopped, manual run strategy", vm: vmWith(virtv1.VirtualMachineStatusStopped, virtv1.RunStrategyManual), state: store.StateStopped},
		{name: "stopping keeps state", vm: vmWith(virtv1.VirtualMachineStatusStopping, virtv1.RunStrategyHalted), vmi: running, state: "", ip: "10.1.2.3"},
		{name: "image pull", vm: vmWith(virtv1.VirtualMachineStatusErrImagePull, virtv1.RunStrategyAlways), state: store.StateFailed, reasonHas: "could not be pulled"},
		{name: "backoff", vm: vmWith(virtv1.VirtualMachineStatusImagePullBackOff, virtv1.RunStrategyAlways), state: store.StateFailed, reasonHas: "backing off"},
		{name: "unschedulable", vm: vmWith(virtv1.VirtualMachineStatusUnschedulable, virtv1.RunStrategyAlways), state: store.StateFailed, reasonHas: "No node"},
		{name: "dv error", vm: vmWith(virtv1.VirtualMachineStatusDataVolumeError, virtv1.RunStrategyAlways), state: store.StateFailed, reasonHas: "Importing"},
		{name: "crash loop", vm: vmWith(virtv1.VirtualMachineStatusCrashLoopBackOff, virtv1.RunStrategyAlways), state: store.StateFailed, reasonHas: "keeps stopping"},
		{name: "failure condition", vm: vmWith(virtv1.VirtualMachineStatusStarting, virtv1.RunStrategyAlways,
			virtv1.VirtualMachineCondition{Type: virtv1.VirtualMachineFailure, Status: corev1.ConditionTrue, Message: "disk is corrupt"}),
			state: store.StateFailed, reasonHas: "disk is corrupt"},
	}
	for _, c := range cases {
		o := Observe(c.vm, c.vmi, c.dv)
		if o.Gone != c.gone {
			t.Errorf("%s: gone = %v", c.name, o.Gone)
			continue
		}
		if c.gone {
			continue
		}
		if o.State != c.state || o.IP != c.ip || !strings.Contains(o.Reason, c.reasonHas) {
			t.Errorf("%s: got state %q ip %q reason %q; want %q %q ~%q", c.name, o.State, o.IP, o.Reason, c.state, c.ip, c.reasonHas)
		}
	}
}

// TestObserveKeepsTheClustersWords: for a failure, the VM's message is the
// cluster's own account of it, from the condition KubeVirt v1.8.0 derives
// the status from (or CDI's, for an import), never the Ready condition,
// which virt-controller lists first and which says only that the guest
// does not run. The conditions are as virt-controller writes them
// (internal/kubetest/failures_test.go checks them on a real one).
func TestObserveKeepsTheClustersWords(t *testing.T) {
	notRunning := virtv1.VirtualMachineCondition{Type: virtv1.VirtualMachineReady, Status: corev1.ConditionFalse,
		Reason: virtv1.GuestNotRunningReason, Message: "Guest VM is not reported as running"}
	noVMI := virtv1.VirtualMachineCondition{Type: virtv1.VirtualMachineReady, Status: corev1.ConditionFalse,
		Reason: "VMINotExists", Message: "VMI does not exist"}
	synchronized := func(reason, msg string) virtv1.VirtualMachineCondition {
		return virtv1.VirtualMachineCondition{Type: virtv1.VirtualMachineConditionType(virtv1.VirtualMachineInstanceSynchronized),
			Status: corev1.ConditionFalse, Reason: reason, Message: msg}
	}
	const scheduler = "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
	const kubelet = `rpc error: code = NotFound desc = failed to pull and unpack image "quay.io/x/y:1": failed to resolve reference "quay.io/x/y:1": quay.io/x/y:1: not found`
	const importer = "Unable to connect to http data source: expected status code 200, got 404. Status: 404 Not Found"
	dv := func(phase cdiv1.DataVolumePhase, reason, msg string) *cdiv1.DataVolume {
		return &cdiv1.DataVolume{Status: cdiv1.DataVolumeStatus{Phase: phase, Progress: "N/A", Conditions: []cdiv1.DataVolumeCondition{
			{Type: cdiv1.DataVolumeBound, Status: corev1.ConditionTrue, Reason: "Bound", Message: "PVC x Bound"},
			{Type: cdiv1.DataVolumeReady, Status: corev1.ConditionFalse},
			{Type: cdiv1.DataVolumeRunning, Status: corev1.ConditionFalse, Reason: reason, Message: msg},
		}}}
	}
	for _, c := range []struct {
		name  string
		vm    *virtv1.VirtualMachine
		dv    *cdiv1.DataVolume
		state store.State
		msg   string
	}{
		{name: "unschedulable", vm: vmWith(virtv1.VirtualMachineStatusUnschedulable, virtv1.RunStrategyAlways, notRunning,
			virtv1.VirtualMachineCondition{Type: "PodScheduled", Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: scheduler}),
			state: store.StateFailed, msg: scheduler},
		{name: "image pull", vm: vmWith(virtv1.VirtualMachineStatusErrImagePull, virtv1.RunStrategyAlways, notRunning, synchronized("ErrImagePull", kubelet)),
			state: store.StateFailed, msg: kubelet},
		{name: "back-off", vm: vmWith(virtv1.VirtualMachineStatusImagePullBackOff, virtv1.RunStrategyAlways, notRunning,
			synchronized("ImagePullBackOff", `Back-off pulling image "quay.io/x/y:1": ErrImagePull: `+kubelet)),
			state: store.StateFailed, msg: `Back-off pulling image "quay.io/x/y:1": ErrImagePull: ` + kubelet},
		{name: "import fails", vm: vmWith(virtv1.VirtualMachineStatusDataVolumeError, virtv1.RunStrategyAlways, noVMI),
			dv: dv(cdiv1.ImportInProgress, "Error", importer), state: store.StateFailed, msg: importer},
		{name: "import never starts", vm: vmWith(virtv1.VirtualMachineStatusProvisioning, virtv1.RunStrategyAlways, noVMI),
			dv: dv(cdiv1.ImportScheduled, "Unschedulable", "Importer pod cannot be scheduled"), state: store.StateProvisioning, msg: "Importer pod cannot be scheduled"},
		{name: "only Ready says anything", vm: vmWith(virtv1.VirtualMachineStatusCrashLoopBackOff, virtv1.RunStrategyAlways, noVMI),
			state: store.StateFailed, msg: ""},
	} {
		o := Observe(c.vm, nil, c.dv)
		if o.State != c.state || o.Message != c.msg {
			t.Errorf("%s: state %q message %q; want %q %q", c.name, o.State, o.Message, c.state, c.msg)
		}
	}
}

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{"dial tcp 127.0.0.1:6443: connect: connection refused", true},
		{"Post \"https://x\": EOF", true},
		{"something else", false},
	} {
		if got := Transient(errString(c.msg)); got != c.want {
			t.Errorf("Transient(%q) = %v", c.msg, got)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
