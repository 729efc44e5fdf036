package provision

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/riverqueue/river"

	"paddock/internal/store"
)

// rebuildWorker replaces a request's VM: it deletes the old one, waits until
// the old VM, its instance and its DataVolumes are gone, and only then
// provisions the new one as for a new request. So the request never has two
// VMs, and the new one (same name) never meets the old one's leftovers.
type rebuildWorker struct {
	river.WorkerDefaults[store.RebuildJob]
	w *Workers
}

func (b *rebuildWorker) NextRetry(job *river.Job[store.RebuildJob]) time.Time {
	return backoff(job.Attempt)
}

// errOldVMNotGone makes River retry while the old VM is still going.
var errOldVMNotGone = errors.New("the old VirtualMachine is still being deleted")

// rebuildPoll and rebuildWait bound how long one attempt waits for the old
// VM to go before handing back to River for a retry.
const (
	rebuildPoll = 100 * time.Millisecond
	rebuildWait = 10 * time.Second
)

func (b *rebuildWorker) Work(ctx context.Context, job *river.Job[store.RebuildJob]) error {
	id := job.Args.RequestID
	log := b.w.Log.With("request_id", id, "job_id", job.ID, "attempt", job.Attempt, "version", job.Args.Version)
	r, err := b.w.Store.Request(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Done already (a retried job), or deleted meanwhile: the delete action
	// takes care of the VM.
	if r.State != store.StateApproved || r.Desired == "deleted" {
		return nil
	}
	ns, name, oldUID := r.Namespace, r.Name, ""
	if r.VM != nil {
		ns, name, oldUID = r.VM.Namespace, r.VM.Name, r.VM.UID
	}
	rid := strconv.FormatInt(id, 10)
	deadline := time.Now().Add(rebuildWait)
	remove, what := b.w.Cluster.removeForRebuild, "VirtualMachine"
	if r.Pool {
		// A pool is rebuilt whole: the old pool and all its members go first.
		remove, what = b.w.Cluster.removePoolForRebuild, "VirtualMachinePool and its VMs"
	}
	for {
		gone, err := remove(ctx, ns, name, rid, oldUID)
		if err != nil {
			return err
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			log.Info("waiting for the old VM to be deleted", "vm", ns+"/"+name)
			return fmt.Errorf("%s/%s: %w", ns, name, errOldVMNotGone)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(rebuildPoll):
		}
	}
	if err := b.w.Store.AddEvent(ctx, id, store.ActorProvisioner, "rebuild_deleted",
		fmt.Sprintf("old %s %s/%s deleted", what, ns, name)); err != nil {
		return err
	}
	log.Info("old virtual machine gone; provisioning its replacement", "vm", ns+"/"+name)
	return b.w.provision(ctx, id, log, time.Time{})
}

// removeForRebuild deletes the request's old VM (the one with oldUID, or any
// VM of that name with the request's label when oldUID is unknown), its
// instance and its DataVolumes, and reports whether all of them are gone.
// A VM of the request with another UID was made by an earlier attempt of the
// same rebuild: the old one is gone and that one is kept (CreateVM adopts it).
func (c *Cluster) removeForRebuild(ctx context.Context, ns, name, requestID, oldUID string) (bool, error) {
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
