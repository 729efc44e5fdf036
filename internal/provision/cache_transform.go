package provision

import (
	"context"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	virtv1 "kubevirt.io/api/core/v1"
)

// The watcher's caches hold every VirtualMachine and VirtualMachineInstance
// Paddock manages, and a whole object is mostly what Paddock never reads:
// the VM's template (domain, disks, cloud-init user data), managed fields,
// annotations, the instance's spec and most of its status. These transforms
// run on each object before it enters a cache (the first list's pages and
// every watch event, see slimWatch) and keep only what the watcher
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

// slimObject keeps what Observe, ObservePool and the watcher read of a VM
// (slimVMObject) or of an instance (slimVMIObject). Objects of other types
// (the Status of a watch's error event, say) pass unchanged.
func slimObject(obj runtime.Object) runtime.Object {
	switch o := obj.(type) {
	case *virtv1.VirtualMachine:
		return slimVMObject(o)
	case *virtv1.VirtualMachineInstance:
		return slimVMIObject(o)
	}
	return obj
}

func slimVMObject(vm *virtv1.VirtualMachine) *virtv1.VirtualMachine {
	return &virtv1.VirtualMachine{
		TypeMeta:   vm.TypeMeta,
		ObjectMeta: slimMeta(vm.ObjectMeta),
		Spec:       virtv1.VirtualMachineSpec{RunStrategy: vm.Spec.RunStrategy},
		Status: virtv1.VirtualMachineStatus{
			PrintableStatus: vm.Status.PrintableStatus, Ready: vm.Status.Ready, Created: vm.Status.Created,
			Conditions: vm.Status.Conditions,
		},
	}
}

// slimVMIObject keeps what the watcher reads of a VM's instance: its
// metadata and its interfaces' addresses.
func slimVMIObject(vmi *virtv1.VirtualMachineInstance) *virtv1.VirtualMachineInstance {
	var ifaces []virtv1.VirtualMachineInstanceNetworkInterface
	for _, i := range vmi.Status.Interfaces {
		ifaces = append(ifaces, virtv1.VirtualMachineInstanceNetworkInterface{Name: i.Name, IP: i.IP, IPs: i.IPs, MAC: i.MAC})
	}
	return &virtv1.VirtualMachineInstance{
		TypeMeta:   vmi.TypeMeta,
		ObjectMeta: slimMeta(vmi.ObjectMeta),
		Status:     virtv1.VirtualMachineInstanceStatus{Phase: vmi.Status.Phase, Interfaces: ifaces},
	}
}

// An informer's transform (SetTransform) would run only after its first
// list had been decoded whole: for 10,000 VMs, 10,000 full objects alive at
// once, the process's peak, which the runtime is slow to give back. So the
// watcher lists its VMs and instances page by page and slims each page
// before it asks for the next; at most one page of whole objects is alive
// at a time.

// listPageSize is how many objects one page of the watcher's first list holds.
const listPageSize = 500

// pagedList calls list for each page of a consistent read of size objects
// and returns the resourceVersion the pages were read at. list keeps what
// it needs of each page and returns the page's resourceVersion and
// continue token. The informer may ask for resourceVersion "0" (whatever
// the API server's watch cache holds), which the server answers whole,
// ignoring the limit; a consistent read is never older than what was asked
// for, so the watch that follows it misses nothing.
func pagedList(ctx context.Context, o metav1.ListOptions, size int64, list func(context.Context, metav1.ListOptions) (rv, cont string, err error)) (string, error) {
	o.ResourceVersion, o.ResourceVersionMatch, o.Continue, o.Limit = "", "", "", size
	for {
		rv, cont, err := list(ctx, o)
		if err != nil {
			return "", err
		}
		if cont == "" {
			return rv, nil
		}
		o.Continue = cont
	}
}

// slimWatch slims the VMs and instances of a watch's events as they come,
// for the informers: an informer's own transform (SetTransform) would copy
// every object of the first list once more, already slim, while the list
// is still alive, at the process's peak.
func slimWatch(w watch.Interface, err error) (watch.Interface, error) {
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
		e.Object = slimObject(e.Object)
		return e, true
	}), nil
}

// listSlimVMs lists VMs page by page, keeping slim copies (slimVMObject).
// The list it returns holds each VM by pointer (runtime.RawExtension), which
// the informer's reflector keeps as it is: items held by value, as in a
// VirtualMachineList, it copies one by one (meta.ExtractListWithAlloc),
// and a slim VM is still a 552-byte struct, an instance 1,512 bytes.
func listSlimVMs(ctx context.Context, o metav1.ListOptions, size int64, list func(context.Context, metav1.ListOptions) (*virtv1.VirtualMachineList, error)) (*metav1.List, error) {
	return listSlim(ctx, o, size, func(ctx context.Context, o metav1.ListOptions, add func(runtime.Object)) (metav1.ListMeta, error) {
		page, err := list(ctx, o)
		if err != nil {
			return metav1.ListMeta{}, err
		}
		for i := range page.Items {
			add(slimVMObject(&page.Items[i]))
		}
		return page.ListMeta, nil
	})
}

// listSlimVMIs lists instances page by page, keeping slim copies
// (slimVMIObject), held as listSlimVMs holds VMs.
func listSlimVMIs(ctx context.Context, o metav1.ListOptions, size int64, list func(context.Context, metav1.ListOptions) (*virtv1.VirtualMachineInstanceList, error)) (*metav1.List, error) {
	return listSlim(ctx, o, size, func(ctx context.Context, o metav1.ListOptions, add func(runtime.Object)) (metav1.ListMeta, error) {
		page, err := list(ctx, o)
		if err != nil {
			return metav1.ListMeta{}, err
		}
		for i := range page.Items {
			add(slimVMIObject(&page.Items[i]))
		}
		return page.ListMeta, nil
	})
}

// listSlim collects the pages of a paged list (pagedList): page fetches
// one, hands add each of its items, slim, and returns the page's list
// metadata. The first page's estimate of the rest sizes the list, rather
// than doubling it page by page.
func listSlim(ctx context.Context, o metav1.ListOptions, size int64, page func(context.Context, metav1.ListOptions, func(runtime.Object)) (metav1.ListMeta, error)) (*metav1.List, error) {
	out := &metav1.List{}
	add := func(obj runtime.Object) { out.Items = append(out.Items, runtime.RawExtension{Object: obj}) }
	rv, err := pagedList(ctx, o, size, func(ctx context.Context, o metav1.ListOptions) (string, string, error) {
		first := len(out.Items) == 0
		m, err := page(ctx, o, add)
		if err != nil {
			return "", "", err
		}
		if first && m.RemainingItemCount != nil && *m.RemainingItemCount > 0 {
			out.Items = slices.Grow(out.Items, int(*m.RemainingItemCount))
		}
		return m.ResourceVersion, m.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	out.ResourceVersion = rv
	return out, nil
}
