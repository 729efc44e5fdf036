package provision

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1beta1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/yaml"

	"paddock/internal/store"
)

// LabelPool names the VirtualMachinePool an object belongs to. Paddock puts
// it on the pool's VM template (so every member VM carries it), on the
// members' instance template and on their DataVolume templates: the pool's
// selector matches it, and the watcher uses it to count a member towards its
// pool's request rather than take it for the request's VM.
const LabelPool = "paddock.dev/pool"

// PoolGroupVersion is the API version of the VirtualMachinePools Paddock makes.
var PoolGroupVersion = poolv1.SchemeGroupVersion

// RenderPool builds the VirtualMachinePool of a pool request: spec.replicas
// VMs, each the VirtualMachine Render makes for the request, with a
// selector on LabelPool. Members are named "<pool>-<index>" by KubeVirt,
// which also appends the index to each DataVolume template's name. The
// cloud-init has no hostname, so each member takes its own name.
func RenderPool(spec store.TemplateSpec, r store.Request) (*poolv1.VirtualMachinePool, error) {
	vm, err := Render(spec, r)
	if err != nil {
		return nil, err
	}
	for k, v := range map[string]string{LabelPool: r.Name} {
		vm.Labels[k] = v
		vm.Spec.Template.ObjectMeta.Labels[k] = v
		for i := range vm.Spec.DataVolumeTemplates {
			vm.Spec.DataVolumeTemplates[i].Labels[k] = v
		}
	}
	// The members' instances are named after the members, not the pool.
	delete(vm.Spec.Template.ObjectMeta.Labels, "kubevirt.io/domain")
	replicas := int32(max(r.Replicas, 1))
	// On scale-down the members of the highest index go first, so the
	// order is predictable and the same as the simulator's (sim_pool.go).
	// Without a sort policy KubeVirt v1.8.0's pool controller picks the
	// members to delete at random.
	descending := poolv1.VirtualMachinePoolSortPolicyDescendingOrder
	pool := &poolv1.VirtualMachinePool{
		TypeMeta: metav1.TypeMeta{APIVersion: PoolGroupVersion.String(), Kind: poolv1.VirtualMachinePoolKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:        r.Name,
			Namespace:   r.Namespace,
			Labels:      maps.Clone(vm.Labels),
			Annotations: vm.Annotations,
		},
		Spec: poolv1.VirtualMachinePoolSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelPool: r.Name}},
			ScaleInStrategy: &poolv1.VirtualMachinePoolScaleInStrategy{
				Proactive: &poolv1.VirtualMachinePoolProactiveScaleInStrategy{
					SelectionPolicy: &poolv1.VirtualMachinePoolSelectionPolicy{SortPolicy: &descending},
				},
			},
			VirtualMachineTemplate: &poolv1.VirtualMachineTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: vm.Labels},
				Spec:       vm.Spec,
			},
		},
	}
	return pool, nil
}

// PoolManifest renders a VirtualMachinePool as YAML, without server-set fields.
func PoolManifest(p *poolv1.VirtualMachinePool) (string, error) {
	c := p.DeepCopy()
	c.APIVersion, c.Kind = PoolGroupVersion.String(), poolv1.VirtualMachinePoolKind
	c.ResourceVersion, c.UID, c.Generation, c.ManagedFields, c.Finalizers = "", "", 0, nil, nil
	c.CreationTimestamp = metav1.Time{}
	c.Status = poolv1.VirtualMachinePoolStatus{}
	b, err := yaml.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode manifest: %w", err)
	}
	s := strings.Replace(string(b), "\nstatus: {}\n", "\n", 1)
	return nullTimestamp.ReplaceAllString(s, ""), nil
}

// CreatePool creates p, or finds the pool a previous attempt made for the
// same request (same name and request label), as CreateVM does for VMs.
func (c *Cluster) CreatePool(ctx context.Context, p *poolv1.VirtualMachinePool) (*poolv1.VirtualMachinePool, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if err := c.ensureNamespace(ctx, p.Namespace); err != nil {
		return nil, err
	}
	pools := c.Virt.PoolV1beta1().VirtualMachinePools(p.Namespace)
	created, err := pools.Create(ctx, p, metav1.CreateOptions{})
	if err == nil {
		return created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		if apierrors.IsNotFound(err) {
			c.namespaces.Delete(p.Namespace)
		}
		return nil, fmt.Errorf("create VirtualMachinePool %s/%s: %w", p.Namespace, p.Name, err)
	}
	existing, err := pools.Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get existing VirtualMachinePool %s/%s: %w", p.Namespace, p.Name, err)
	}
	if existing.Labels[LabelRequest] != p.Labels[LabelRequest] || existing.Labels[LabelManagedBy] != ManagedByValue {
		return nil, fmt.Errorf("VirtualMachinePool %s/%s: %w", p.Namespace, p.Name, ErrNotOurs)
	}
	return existing, nil
}

func (c *Cluster) ourPool(ctx context.Context, ns, name, requestID string) (*poolv1.VirtualMachinePool, error) {
	p, err := c.Virt.PoolV1beta1().VirtualMachinePools(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if p.Labels[LabelRequest] != requestID {
		return nil, fmt.Errorf("VirtualMachinePool %s/%s: %w", ns, name, ErrNotOurs)
	}
	return p, nil
}

// ScalePool sets spec.replicas of the request's pool (a merge patch: it
// changes nothing else, so it cannot undo what others set meanwhile).
func (c *Cluster) ScalePool(ctx context.Context, ns, name, requestID string, replicas int) error {
	return poolKind{}.scale(ctx, c, ns, name, requestID, replicas)
}

func (poolKind) scale(ctx context.Context, c *Cluster, ns, name, requestID string, replicas int) error {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	p, err := c.ourPool(ctx, ns, name, requestID)
	if err != nil {
		return err
	}
	if p.Spec.Replicas != nil && int(*p.Spec.Replicas) == replicas {
		return nil
	}
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	_, err = c.Virt.PoolV1beta1().VirtualMachinePools(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("scale VirtualMachinePool %s/%s to %d: %w", ns, name, replicas, err)
	}
	return nil
}

// members lists the member VMs of the request's pool.
func (c *Cluster) members(ctx context.Context, ns, name, requestID string) ([]virtv1.VirtualMachine, error) {
	list, err := c.Virt.KubevirtV1().VirtualMachines(ns).List(ctx, metav1.ListOptions{
		LabelSelector: LabelPool + "=" + name + "," + LabelRequest + "=" + requestID})
	if err != nil {
		return nil, fmt.Errorf("list members of %s/%s: %w", ns, name, err)
	}
	return list.Items, nil
}

// setRunStrategy starts (Always) or stops (Halted) a pool: it sets the
// run strategy of the pool's VM template, so members made later follow it,
// and of every member now.
func (poolKind) setRunStrategy(ctx context.Context, c *Cluster, ns, name, requestID string, rs virtv1.VirtualMachineRunStrategy) error {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := c.ourPool(ctx, ns, name, requestID); err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"spec":{"virtualMachineTemplate":{"spec":{"runStrategy":%q}}}}`, rs)
	if _, err := c.Virt.PoolV1beta1().VirtualMachinePools(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("set runStrategy %s on pool %s/%s: %w", rs, ns, name, err)
	}
	ms, err := c.members(ctx, ns, name, requestID)
	if err != nil {
		return err
	}
	vmPatch := fmt.Sprintf(`{"spec":{"runStrategy":%q}}`, rs)
	for _, m := range ms {
		_, err := c.Virt.KubevirtV1().VirtualMachines(ns).Patch(ctx, m.Name, types.MergePatchType, []byte(vmPatch), metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("set runStrategy %s on %s/%s: %w", rs, ns, m.Name, err)
		}
	}
	return nil
}

// restart restarts every member of a pool (deleting its instance; the VM
// controller starts a fresh one).
func (poolKind) restart(ctx context.Context, c *Cluster, ns, name, requestID string) error {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := c.ourPool(ctx, ns, name, requestID); err != nil {
		return err
	}
	ms, err := c.members(ctx, ns, name, requestID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := c.Virt.KubevirtV1().VirtualMachineInstances(ns).Delete(ctx, m.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete VirtualMachineInstance %s/%s: %w", ns, m.Name, err)
		}
	}
	return nil
}

// remove deletes a pool; its members, their instances and DataVolumes
// follow by owner reference (KubeVirt's pool controller and the garbage
// collector). The request's DataVolumes are deleted explicitly too, as a
// VM's are.
func (poolKind) remove(ctx context.Context, c *Cluster, ns, name, requestID string) error {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	_, err := c.ourPool(ctx, ns, name, requestID)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	default:
		bg := metav1.DeletePropagationBackground
		err := c.Virt.PoolV1beta1().VirtualMachinePools(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete VirtualMachinePool %s/%s: %w", ns, name, err)
		}
	}
	return c.deleteDataVolumes(ctx, ns, name, requestID)
}

// removeForRebuild deletes the request's old pool (the one with oldUID,
// or any pool of that name with the request's label when oldUID is unknown)
// and reports whether it and every member VM of the request are gone. A
// pool of the request with another UID was made by an earlier attempt of
// the same rebuild: the old one is gone and that one is kept (CreatePool
// adopts it); its members are the new pool's.
func (poolKind) removeForRebuild(ctx context.Context, c *Cluster, ns, name, requestID, oldUID string) (bool, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	pools := c.Virt.PoolV1beta1().VirtualMachinePools(ns)
	p, err := pools.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, fmt.Errorf("get VirtualMachinePool %s/%s: %w", ns, name, err)
	case p.Labels[LabelRequest] != requestID:
		return true, nil
	case oldUID != "" && string(p.UID) != oldUID:
		return true, nil
	default:
		if p.DeletionTimestamp == nil {
			bg := metav1.DeletePropagationBackground
			err := pools.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
			if err != nil && !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("delete VirtualMachinePool %s/%s: %w", ns, name, err)
			}
		}
		return false, nil
	}
	// The pool is gone; wait for its members (and their instances and
	// disks) too, so that the new pool's members never meet them. Deleting
	// them is the pool controller's and garbage collector's work; ask for
	// it as well rather than rely on either.
	ms, err := c.members(ctx, ns, name, requestID)
	if err != nil {
		return false, err
	}
	gone := true
	for _, m := range ms {
		gone = false
		if m.DeletionTimestamp == nil {
			bg := metav1.DeletePropagationBackground
			err := c.Virt.KubevirtV1().VirtualMachines(ns).Delete(ctx, m.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
			if err != nil && !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("delete member %s/%s: %w", ns, m.Name, err)
			}
		}
	}
	sel := metav1.ListOptions{LabelSelector: LabelPool + "=" + name + "," + LabelRequest + "=" + requestID}
	vmis, err := c.Virt.KubevirtV1().VirtualMachineInstances(ns).List(ctx, sel)
	if err != nil {
		return false, fmt.Errorf("list member instances of %s/%s: %w", ns, name, err)
	}
	for _, vmi := range vmis.Items {
		gone = false
		if vmi.DeletionTimestamp == nil {
			err := c.Virt.KubevirtV1().VirtualMachineInstances(ns).Delete(ctx, vmi.Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("delete VirtualMachineInstance %s/%s: %w", ns, vmi.Name, err)
			}
		}
	}
	dvs := c.CDI.CdiV1beta1().DataVolumes(ns)
	dsel := metav1.ListOptions{LabelSelector: LabelRequest + "=" + requestID}
	list, err := dvs.List(ctx, dsel)
	if err != nil {
		return false, fmt.Errorf("list DataVolumes of %s/%s: %w", ns, name, err)
	}
	if len(list.Items) > 0 {
		gone = false
		if err := dvs.DeleteCollection(ctx, metav1.DeleteOptions{}, dsel); err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("delete DataVolumes of %s/%s: %w", ns, name, err)
		}
	}
	return gone, nil
}

// ObservePool turns what the cluster shows of a pool and its members (each
// with its instance and root DataVolume, found by member name) into one
// observation of the pool's request: running when all desired replicas are
// ready, failed when a member failed, stopped when every member is stopped,
// provisioning otherwise; each member listed with its status and IP.
func ObservePool(p *poolv1.VirtualMachinePool, members []*virtv1.VirtualMachine,
	vmi func(name string) *virtv1.VirtualMachineInstance, dv func(name string) *cdiv1.DataVolume) store.Observation {
	if p == nil || p.DeletionTimestamp != nil && len(p.Finalizers) == 0 {
		return store.Observation{Pool: true, Gone: true}
	}
	desired := 1
	if p.Spec.Replicas != nil {
		desired = int(*p.Spec.Replicas)
	}
	sort.Slice(members, func(i, j int) bool {
		a, b := members[i].Name, members[j].Name
		return len(a) < len(b) || len(a) == len(b) && a < b
	})
	o := store.Observation{Pool: true, Members: []store.PoolMember{}, Replicas: desired}
	ready, stopped, live := 0, 0, 0
	var failed []string
	for _, m := range members {
		mo := Observe(m, vmi(m.Name), dv(m.Name))
		if mo.Gone {
			continue
		}
		live++
		pm := store.PoolMember{Name: m.Name, Status: mo.Status, IP: mo.IP, Message: mo.Message}
		switch mo.State {
		case store.StateRunning:
			pm.Ready = m.Status.Ready || mo.IP != ""
		case store.StateStopped:
			stopped++
		case store.StateFailed:
			failed = append(failed, m.Name+": "+mo.Reason)
		}
		if pm.Ready {
			ready++
		}
		o.Members = append(o.Members, pm)
	}
	o.Status = fmt.Sprintf("%d/%d ready", ready, desired)
	switch {
	case len(failed) > 0:
		o.State = store.StateFailed
		o.Reason = "A VM of the pool failed. " + strings.Join(failed, " ")
	case live > 0 && stopped == live && live >= desired:
		o.State, o.Status = store.StateStopped, fmt.Sprintf("%d/%d stopped", stopped, desired)
	case ready >= desired && live == desired:
		o.State = store.StateRunning
	default:
		o.State = store.StateProvisioning
		switch {
		case live > desired:
			o.Reason = fmt.Sprintf("Scaling down: %d VMs, %d wanted.", live, desired)
		default:
			o.Reason = fmt.Sprintf("%d of %d VMs ready.", ready, desired)
		}
	}
	return o
}
