package provision

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
)

// The watcher's caches hold every VirtualMachine and VirtualMachineInstance
// Paddock manages, and a whole object is mostly what Paddock never reads:
// the VM's template (domain, disks, cloud-init user data), managed fields,
// annotations, the instance's spec and most of its status. These transforms
// run on each object as it enters a cache and keep only what the watcher
// reads: identity and ownership (name, namespace, UID, resourceVersion,
// labels, owner references, creation and deletion, finalizers), the VM's run
// strategy, printable status, ready flag and conditions, and the instance's
// network interfaces. Anything else the watcher starts reading must be kept
// here too; TestCacheTransformsKeepWhatTheWatcherReads says which fields are.

// slimMeta is the part of an object's metadata the watcher reads.
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
		Labels: m.Labels, OwnerReferences: m.OwnerReferences, Finalizers: m.Finalizers,
	}
}

// slimVM keeps what Observe, ObservePool and the watcher read of a VM.
// Objects of other types (such as a cache.DeletedFinalStateUnknown) pass
// unchanged.
func slimVM(obj any) (any, error) {
	vm, ok := obj.(*virtv1.VirtualMachine)
	if !ok {
		return obj, nil
	}
	return &virtv1.VirtualMachine{
		TypeMeta:   vm.TypeMeta,
		ObjectMeta: slimMeta(vm.ObjectMeta),
		Spec:       virtv1.VirtualMachineSpec{RunStrategy: vm.Spec.RunStrategy},
		Status: virtv1.VirtualMachineStatus{
			PrintableStatus: vm.Status.PrintableStatus, Ready: vm.Status.Ready, Created: vm.Status.Created,
			Conditions: vm.Status.Conditions,
		},
	}, nil
}

// slimVMI keeps what the watcher reads of a VM's instance: its metadata and
// its interfaces' addresses.
func slimVMI(obj any) (any, error) {
	vmi, ok := obj.(*virtv1.VirtualMachineInstance)
	if !ok {
		return obj, nil
	}
	var ifaces []virtv1.VirtualMachineInstanceNetworkInterface
	for _, i := range vmi.Status.Interfaces {
		ifaces = append(ifaces, virtv1.VirtualMachineInstanceNetworkInterface{Name: i.Name, IP: i.IP, IPs: i.IPs, MAC: i.MAC})
	}
	return &virtv1.VirtualMachineInstance{
		TypeMeta:   vmi.TypeMeta,
		ObjectMeta: slimMeta(vmi.ObjectMeta),
		Status:     virtv1.VirtualMachineInstanceStatus{Phase: vmi.Status.Phase, Interfaces: ifaces},
	}, nil
}
