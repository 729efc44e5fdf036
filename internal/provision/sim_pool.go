package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1beta1"
	virtfake "kubevirt.io/client-go/kubevirt/fake"

	"paddock/internal/store"
)

// simPool is the kind under which simulated pools are stored.
const simPool = "VirtualMachinePool"

// poolGVK is the kind members name in their controller owner reference.
var poolGVK = poolv1.SchemeGroupVersion.WithKind(poolv1.VirtualMachinePoolKind)

// simPools is the Simulator's stand-in for KubeVirt's pool controller: it
// keeps spec.replicas member VMs named "<pool>-<index>" (the lowest free
// indexes on scale-up, the highest go first on scale-down), each made from
// the pool's VM template with the template's labels, a controller owner
// reference to the pool, and the index appended to its DataVolume
// templates' names, as KubeVirt does; deleting the pool deletes them. The
// Simulator's VM part then runs each member as any VM.
type simPools struct {
	informer cache.SharedIndexInformer
	queue    workqueue.TypedRateLimitingInterface[string]
}

func (s *Simulator) addPoolController() {
	api := s.cluster.Virt.PoolV1beta1()
	p := &simPools{queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	p.informer = cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return api.VirtualMachinePools(metav1.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return api.VirtualMachinePools(metav1.NamespaceAll).Watch(ctx, o)
		},
	}, &poolv1.VirtualMachinePool{}, 0, cache.Indexers{})
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			p.queue.Add(key)
		}
	}
	_, _ = p.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	})
	// A member's change (ready, gone) is its pool's change.
	member := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if vm, ok := obj.(*virtv1.VirtualMachine); ok {
			if ref := metav1.GetControllerOf(vm); ref != nil && ref.Kind == poolv1.VirtualMachinePoolKind {
				p.queue.Add(vm.Namespace + "/" + ref.Name)
			}
		}
	}
	_, _ = s.vms.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: member, UpdateFunc: func(_, o any) { member(o) }, DeleteFunc: member,
	})
	s.pools = p
}

// runPools drives simulated pools until ctx ends.
func (s *Simulator) runPools(ctx context.Context) {
	p := s.pools
	defer p.queue.ShutDown()
	go p.informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), p.informer.HasSynced, s.vms.HasSynced) {
		return
	}
	go func() {
		<-ctx.Done()
		p.queue.ShutDown()
	}()
	for {
		key, quit := p.queue.Get()
		if quit {
			return
		}
		if ctx.Err() != nil {
			p.queue.Done(key) // stopped: drain without acting, as Run does
			continue
		}
		if err := s.reconcilePool(ctx, key); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("simulator: pool reconcile failed", "pool", key, "err", err)
				p.queue.AddRateLimited(key)
			}
		} else {
			p.queue.Forget(key)
		}
		p.queue.Done(key)
	}
}

func (s *Simulator) reconcilePool(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	if s.Namespace != "" && ns != s.Namespace {
		return nil
	}
	vms := s.cluster.Virt.KubevirtV1().VirtualMachines(ns)
	var members []virtv1.VirtualMachine
	for _, obj := range s.vms.GetStore().List() {
		vm := obj.(*virtv1.VirtualMachine)
		if ref := metav1.GetControllerOf(vm); vm.Namespace == ns && ref != nil && ref.Kind == poolv1.VirtualMachinePoolKind && ref.Name == name {
			members = append(members, *vm)
		}
	}
	obj, exists, err := s.pools.informer.GetStore().GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		// The garbage collector's part: members go with their pool.
		for _, m := range members {
			bg := metav1.DeletePropagationBackground
			if err := vms.Delete(ctx, m.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		return s.persist(ctx, store.SimObject{Kind: simPool, Namespace: ns, Name: name})
	}
	pool := obj.(*poolv1.VirtualMachinePool).DeepCopy()
	if err := s.save(ctx, simPool, ns, name, pool); err != nil {
		return err
	}
	s.saveNamespace(ctx, ns)
	for _, m := range members {
		if string(metav1.GetControllerOf(&m).UID) != string(pool.UID) && pool.UID != "" {
			// A member of an earlier pool of the same name: not this one's.
			if err := vms.Delete(ctx, m.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	desired := 1
	if pool.Spec.Replicas != nil {
		desired = int(*pool.Spec.Replicas)
	}
	taken := map[int]virtv1.VirtualMachine{}
	for _, m := range members {
		if i := store.MemberIndex(name, m.Name); i >= 0 && m.DeletionTimestamp == nil &&
			(pool.UID == "" || metav1.GetControllerOf(&m).UID == pool.UID) {
			taken[i] = m
		}
	}
	idx := make([]int, 0, len(taken))
	for i := range taken {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for len(idx) > desired {
		last := idx[len(idx)-1]
		idx = idx[:len(idx)-1]
		if err := vms.Delete(ctx, fmt.Sprintf("%s-%d", name, last), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	for i := 0; len(taken) < desired && pool.Spec.VirtualMachineTemplate != nil; i++ {
		if _, ok := taken[i]; ok {
			continue
		}
		vm := poolMember(pool, i)
		created, err := vms.Create(ctx, vm, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		if created != nil {
			taken[i] = *created
		} else {
			taken[i] = *vm
		}
	}
	ready := 0
	for _, i := range idx {
		if taken[i].Status.Ready {
			ready++
		}
	}
	if int(pool.Status.Replicas) != len(taken) || int(pool.Status.ReadyReplicas) != ready {
		pool.Status.Replicas, pool.Status.ReadyReplicas = int32(len(taken)), int32(ready)
		updated, err := s.cluster.Virt.PoolV1beta1().VirtualMachinePools(ns).UpdateStatus(ctx, pool, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		return s.save(ctx, simPool, ns, name, updated)
	}
	return nil
}

// poolMember is the member VM of index i of pool, as KubeVirt's pool
// controller makes it.
func poolMember(pool *poolv1.VirtualMachinePool, i int) *virtv1.VirtualMachine {
	t := pool.Spec.VirtualMachineTemplate
	vm := &virtv1.VirtualMachine{
		TypeMeta: metav1.TypeMeta{APIVersion: virtv1.GroupVersion.String(), Kind: "VirtualMachine"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            fmt.Sprintf("%s-%d", pool.Name, i),
			Namespace:       pool.Namespace,
			Labels:          maps.Clone(t.ObjectMeta.Labels),
			Annotations:     maps.Clone(t.ObjectMeta.Annotations),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(pool, poolGVK)},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	renamed := map[string]string{}
	for j := range vm.Spec.DataVolumeTemplates {
		dv := &vm.Spec.DataVolumeTemplates[j]
		n := fmt.Sprintf("%s-%d", dv.Name, i)
		renamed[dv.Name], dv.Name = n, n
	}
	if vm.Spec.Template != nil {
		for j := range vm.Spec.Template.Spec.Volumes {
			if v := vm.Spec.Template.Spec.Volumes[j].DataVolume; v != nil && renamed[v.Name] != "" {
				v.Name = renamed[v.Name]
			}
		}
	}
	return vm
}

// addPoolReactor makes the simulated API server set what a real one sets on
// a created pool (uid, creation time), and keep the pool before it answers,
// as the VM reactor does for VMs.
func addPoolReactor(ctx context.Context, virt *virtfake.Clientset, st *store.Store) {
	virt.PrependReactor("create", "virtualmachinepools", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p, ok := a.(k8stesting.CreateAction).GetObject().(*poolv1.VirtualMachinePool)
		if !ok {
			return false, nil, nil
		}
		if _, err := virt.Tracker().Get(poolv1.SchemeGroupVersion.WithResource("virtualmachinepools"), p.Namespace, p.Name); err == nil {
			return false, nil, nil // the tracker answers AlreadyExists
		}
		if p.CreationTimestamp.IsZero() {
			p.CreationTimestamp = metav1.Now()
		}
		if p.UID == "" {
			p.UID = types.UID(uuid.NewString())
		}
		b, err := json.Marshal(p)
		if err != nil {
			return true, nil, err
		}
		if err := st.SaveSimObject(ctx, store.SimObject{Kind: simPool, Namespace: p.Namespace, Name: p.Name, Body: b}); err != nil {
			return true, nil, apierrors.NewServiceUnavailable("simulated cluster storage unavailable")
		}
		return false, nil, nil
	})
}
