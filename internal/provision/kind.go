package provision

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1beta1"

	"paddock/internal/store"
)

// kind is what Reconcile does to a request's object in the cluster, the
// same for a VirtualMachine (vmKind) and a VirtualMachinePool (poolKind):
// make it, start or stop it, restart it, scale it, remove it, and read its
// spec from the watcher's cache.
type kind interface {
	// String names the kind for messages ("VirtualMachine").
	String() string
	// create renders the request's object from spec and creates it (or
	// finds the one an earlier attempt made), returning what to record.
	create(ctx context.Context, c *Cluster, r store.Request, spec store.TemplateSpec) (store.VM, error)
	setRunStrategy(ctx context.Context, c *Cluster, ns, name, rid string, rs virtv1.VirtualMachineRunStrategy) error
	restart(ctx context.Context, c *Cluster, ns, name, rid string) error
	// scale makes the object run replicas VMs (a VM always runs one).
	scale(ctx context.Context, c *Cluster, ns, name, rid string, replicas int) error
	remove(ctx context.Context, c *Cluster, ns, name, rid string) error
	// removeForRebuild removes the object with oldUID and everything it
	// made, reporting whether all of it is gone.
	removeForRebuild(ctx context.Context, c *Cluster, ns, name, rid, oldUID string) (bool, error)
	// cached is the object's run strategy and replicas as the watcher's
	// cache holds them, ok false when it holds no object of the request.
	cached(w *Watcher, ns, name, rid string) (rs virtv1.VirtualMachineRunStrategy, replicas int, ok bool)
	// kick asks the watcher for a fresh look at the object.
	kick(w *Watcher, ns, name string, id int64)
}

func kindOf(r store.Request) kind {
	if r.Pool {
		return poolKind{}
	}
	return vmKind{}
}

type vmKind struct{}

func (vmKind) String() string { return "VirtualMachine" }

func (vmKind) create(ctx context.Context, c *Cluster, r store.Request, spec store.TemplateSpec) (store.VM, error) {
	vm, err := Render(spec, r)
	if err != nil {
		return store.VM{}, &PermanentError{Reason: "The template could not be turned into a VirtualMachine: " + err.Error()}
	}
	created, err := c.CreateVM(ctx, vm)
	if err != nil {
		return store.VM{}, explainCreate(err, "VirtualMachine", vm.Namespace, vm.Name)
	}
	manifest, err := Manifest(vm)
	if err != nil {
		return store.VM{}, err
	}
	return store.VM{Namespace: created.Namespace, Name: created.Name, UID: string(created.UID),
		Status: string(created.Status.PrintableStatus), Manifest: manifest}, nil
}

func (vmKind) scale(context.Context, *Cluster, string, string, string, int) error { return nil }

func (vmKind) cached(w *Watcher, ns, name, rid string) (virtv1.VirtualMachineRunStrategy, int, bool) {
	if w == nil {
		return "", 0, false
	}
	obj, ok, _ := w.vms.GetStore().GetByKey(ns + "/" + name)
	if !ok {
		return "", 0, false
	}
	vm := obj.(*virtv1.VirtualMachine)
	if vm.Labels[LabelRequest] != rid || vm.Spec.RunStrategy == nil {
		return "", 0, false
	}
	return *vm.Spec.RunStrategy, 1, true
}

func (vmKind) kick(w *Watcher, ns, name string, id int64) { w.Kick(ns, name, id) }

type poolKind struct{}

func (poolKind) String() string { return "VirtualMachinePool" }

func (poolKind) create(ctx context.Context, c *Cluster, r store.Request, spec store.TemplateSpec) (store.VM, error) {
	p, err := RenderPool(spec, r)
	if err != nil {
		return store.VM{}, &PermanentError{Reason: "The template could not be turned into a VirtualMachinePool: " + err.Error()}
	}
	created, err := c.CreatePool(ctx, p)
	if err != nil {
		return store.VM{}, explainCreate(err, "VirtualMachinePool", p.Namespace, p.Name)
	}
	manifest, err := PoolManifest(p)
	if err != nil {
		return store.VM{}, err
	}
	return store.VM{Namespace: created.Namespace, Name: created.Name, UID: string(created.UID), Manifest: manifest}, nil
}

// cached reads the run strategy of the pool's VM template: the members
// follow it (SetPoolRunStrategy sets both).
func (poolKind) cached(w *Watcher, ns, name, rid string) (virtv1.VirtualMachineRunStrategy, int, bool) {
	if w == nil {
		return "", 0, false
	}
	obj, ok := cached(w.poolInformer(), ns+"/"+name)
	if !ok {
		return "", 0, false
	}
	p := obj.(*poolv1.VirtualMachinePool)
	if p.Labels[LabelRequest] != rid || p.Spec.Replicas == nil || p.Spec.VirtualMachineTemplate == nil ||
		p.Spec.VirtualMachineTemplate.Spec.RunStrategy == nil {
		return "", 0, false
	}
	return *p.Spec.VirtualMachineTemplate.Spec.RunStrategy, int(*p.Spec.Replicas), true
}

func (poolKind) kick(w *Watcher, ns, name string, id int64) { w.KickPool(ns, name, id) }

// PermanentError is a provisioning failure that retrying cannot fix; the
// request is marked failed with Reason, which is written for the developer.
type PermanentError struct{ Reason string }

func (e *PermanentError) Error() string { return e.Reason }

// explainCreate turns an error creating the named object of kind what into
// a permanent failure with a reason for the developer, or returns it as is
// to be retried.
func explainCreate(err error, what, ns, name string) error {
	switch {
	case errors.Is(err, ErrNotOurs):
		return &PermanentError{Reason: fmt.Sprintf(
			"A %s named %q already exists in namespace %s and was not created by Paddock for this request; Paddock leaves it alone. Request again with another name.",
			what, name, ns)}
	case errors.Is(err, ErrNoNamespace):
		return &PermanentError{Reason: fmt.Sprintf(
			"Your team's namespace %q does not exist in the cluster. Ask the platform team to create it, then request again.", ns)}
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return &PermanentError{Reason: "The cluster refused the " + what + ": " + apiMessage(err) + " Tell the platform team which template you used."}
	case apierrors.IsForbidden(err):
		return &PermanentError{Reason: "The cluster did not allow Paddock to create the " + what + ": " + apiMessage(err)}
	}
	return err
}

func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}
