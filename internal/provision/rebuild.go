package provision

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// removeForRebuild (of vmKind) deletes the request's old VM (the one with oldUID, or any
// VM of that name with the request's label when oldUID is unknown), its
// instance and its DataVolumes, and reports whether all of them are gone.
// A VM of the request with another UID was made by an earlier attempt of the
// same rebuild: the old one is gone and that one is kept (CreateVM adopts it).
func (vmKind) removeForRebuild(ctx context.Context, c *Cluster, ns, name, requestID, oldUID string) (bool, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	virt := c.Virt.KubevirtV1()
	gone := true
	vm, err := virt.VirtualMachines(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, fmt.Errorf("get VirtualMachine %s/%s: %w", ns, name, err)
	case vm.Labels[LabelRequest] != requestID:
		// Someone else's VM took the name; ours is gone (creating the new
		// one will say so).
		return true, nil
	case oldUID != "" && string(vm.UID) != oldUID:
		return true, nil
	default:
		gone = false
		if vm.DeletionTimestamp == nil {
			bg := metav1.DeletePropagationBackground
			err := virt.VirtualMachines(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
			if err != nil && !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("delete VirtualMachine %s/%s: %w", ns, name, err)
			}
		}
	}
	// The instance and DataVolumes are the VM's to delete (by owner
	// reference), but ask for it rather than rely on a garbage collector.
	vmi, err := virt.VirtualMachineInstances(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, fmt.Errorf("get VirtualMachineInstance %s/%s: %w", ns, name, err)
	case vmi.Labels[LabelRequest] == requestID:
		gone = false
		if vmi.DeletionTimestamp == nil {
			err := virt.VirtualMachineInstances(ns).Delete(ctx, name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("delete VirtualMachineInstance %s/%s: %w", ns, name, err)
			}
		}
	}
	dvs := c.CDI.CdiV1beta1().DataVolumes(ns)
	sel := metav1.ListOptions{LabelSelector: LabelRequest + "=" + requestID}
	list, err := dvs.List(ctx, sel)
	if err != nil {
		return false, fmt.Errorf("list DataVolumes of %s/%s: %w", ns, name, err)
	}
	if len(list.Items) > 0 {
		gone = false
		if err := dvs.DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("delete DataVolumes of %s/%s: %w", ns, name, err)
		}
	}
	return gone, nil
}
