package provision

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	virtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"paddock/internal/store"
)

// failures explains, for a developer, each VM status that means it will not
// come up without someone changing something.
var failures = map[virtv1.VirtualMachinePrintableStatus]string{
	virtv1.VirtualMachineStatusErrImagePull:     "The VM's disk image could not be pulled. The image named by the template may not exist, or its registry is unreachable; tell the platform team which template you used.",
	virtv1.VirtualMachineStatusImagePullBackOff: "The VM's disk image could not be pulled, and the cluster is backing off before trying again. The image named by the template may not exist, or its registry is unreachable.",
	virtv1.VirtualMachineStatusUnschedulable:    "No node in the cluster can run this VM right now (not enough free CPU or memory, or no node matches its requirements). Try a smaller size, or ask the platform team for capacity.",
	virtv1.VirtualMachineStatusDataVolumeError:  "Importing the VM's disk failed. The image URL may be wrong or unreachable, or the storage could not be provisioned.",
	virtv1.VirtualMachineStatusCrashLoopBackOff: "The VM keeps stopping right after it starts, so the cluster is waiting before each new try. Its recent events below may say why.",
	virtv1.VirtualMachineStatusPvcNotFound:      "The VM's disk volume is missing.",
}

// waiting explains the normal, temporary statuses on the way to running.
var waiting = map[virtv1.VirtualMachinePrintableStatus]string{
	virtv1.VirtualMachineStatusProvisioning:            "Preparing the VM's disks.",
	virtv1.VirtualMachineStatusStarting:                "Starting the VM.",
	virtv1.VirtualMachineStatusWaitingForVolumeBinding: "Waiting for storage: the VM's disk volume is not bound yet.",
	virtv1.VirtualMachineStatusUnknown:                 "The cluster does not know the VM's state right now.",
}

// Observe turns what the cluster shows of a VM, its instance and its root
// DataVolume (any may be nil) into an observation for the store.
func Observe(vm *virtv1.VirtualMachine, vmi *virtv1.VirtualMachineInstance, dv *cdiv1.DataVolume) store.Observation {
	if vm == nil || vm.DeletionTimestamp != nil && len(vm.Finalizers) == 0 {
		return store.Observation{Gone: true}
	}
	status := vm.Status.PrintableStatus
	o := store.Observation{Status: string(status)}
	if vmi != nil && vmi.DeletionTimestamp == nil {
		for _, iface := range vmi.Status.Interfaces {
			if iface.IP != "" {
				o.IP = iface.IP
				break
			}
		}
	}
	for _, c := range vm.Status.Conditions {
		if c.Type == virtv1.VirtualMachineFailure && c.Status == "True" {
			o.State, o.Message = store.StateFailed, c.Message
			o.Reason = "The VM failed: " + strings.TrimSuffix(c.Message, ".") + "."
			return o
		}
	}
	if why, ok := failures[status]; ok {
		o.State, o.Reason = store.StateFailed, why
		o.Message = failureDetail(vm, dv)
		return o
	}
	switch status {
	case virtv1.VirtualMachineStatusRunning, virtv1.VirtualMachineStatusPaused, virtv1.VirtualMachineStatusMigrating:
		o.State = store.StateRunning
		if o.IP == "" {
			o.Reason = "Running; waiting for the VM to report an IP address (the guest agent or DHCP may still be starting)."
		}
	case virtv1.VirtualMachineStatusStopped:
		o.State = store.StateStopped
		if vm.Spec.RunStrategy != nil && *vm.Spec.RunStrategy == virtv1.RunStrategyAlways {
			// virt-controller shows a VM without an instance as Stopped,
			// also for the moment between its creation (or a restart's
			// deletion of its instance) and the instance it is about to
			// make; with Always it always makes one.
			o.State, o.Reason = store.StateProvisioning, waiting[virtv1.VirtualMachineStatusStarting]
		}
	case virtv1.VirtualMachineStatusProvisioning, virtv1.VirtualMachineStatusStarting,
		virtv1.VirtualMachineStatusWaitingForVolumeBinding, virtv1.VirtualMachineStatusUnknown, "":
		o.State = store.StateProvisioning
		o.Reason = waiting[status]
		if status == "" {
			o.Reason = "Waiting for KubeVirt to pick up the VM."
		}
		if dv != nil && dv.Status.Phase != cdiv1.Succeeded && dv.Status.Progress != "" && dv.Status.Progress != "N/A" {
			o.Reason = fmt.Sprintf("Importing the disk image (%s).", dv.Status.Progress)
		}
		if dv != nil && dv.Status.Phase != cdiv1.Succeeded {
			// Why the import is not running, in CDI's words (an importer
			// pod that cannot be scheduled never becomes an error to KubeVirt).
			if c := dataVolumeCondition(dv, cdiv1.DataVolumeRunning); c != nil && c.Status == corev1.ConditionFalse {
				o.Message = c.Message
			}
		}
		if vm.Spec.RunStrategy != nil && *vm.Spec.RunStrategy == virtv1.RunStrategyHalted && status != "" {
			o.State, o.Reason = store.StateStopped, ""
		}
	default: // Stopping, Terminating and others in motion: keep the state, show the status.
	}
	return o
}

// failureDetail is what the cluster says of the failure behind the VM's
// status, in its own words: the message of the condition virt-controller
// derived the status from (it copies the launcher pod's PodScheduled
// condition, with the scheduler's message, and reports an image pull in
// the Synchronized condition, with kubelet's message), or for a failed
// import CDI's, which KubeVirt shows only as the status. The Ready
// condition is never it: while the VM does not run, its message is
// "VMI does not exist" or "Guest VM is not reported as running".
func failureDetail(vm *virtv1.VirtualMachine, dv *cdiv1.DataVolume) string {
	from := virtv1.VirtualMachineConditionType("")
	switch vm.Status.PrintableStatus {
	case virtv1.VirtualMachineStatusUnschedulable:
		from = virtv1.VirtualMachineConditionType(corev1.PodScheduled)
	case virtv1.VirtualMachineStatusErrImagePull, virtv1.VirtualMachineStatusImagePullBackOff, virtv1.VirtualMachineStatusPvcNotFound:
		from = virtv1.VirtualMachineConditionType(virtv1.VirtualMachineInstanceSynchronized)
	case virtv1.VirtualMachineStatusDataVolumeError:
		if dv != nil {
			if c := dataVolumeCondition(dv, cdiv1.DataVolumeRunning); c != nil && c.Status == corev1.ConditionFalse && c.Message != "" {
				return c.Message
			}
		}
	}
	for _, c := range vm.Status.Conditions {
		if c.Type == from && c.Status == corev1.ConditionFalse && c.Message != "" {
			return c.Message
		}
	}
	for _, c := range vm.Status.Conditions {
		if c.Type != virtv1.VirtualMachineReady && c.Message != "" && (c.Status == corev1.ConditionFalse || c.Reason != "") {
			return c.Message
		}
	}
	return ""
}

func dataVolumeCondition(dv *cdiv1.DataVolume, t cdiv1.DataVolumeConditionType) *cdiv1.DataVolumeCondition {
	for i := range dv.Status.Conditions {
		if dv.Status.Conditions[i].Type == t {
			return &dv.Status.Conditions[i]
		}
	}
	return nil
}
