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
