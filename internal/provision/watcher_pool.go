package provision

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1beta1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"paddock/internal/store"
)

// poolIndex indexes VMs and instances by "<namespace>/<pool>" of LabelPool.
const poolIndex = "paddock-pool"

func poolIndexFunc(obj any) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	p := m.GetLabels()[LabelPool]
	if p == "" {
		return nil, nil
	}
	return []string{m.GetNamespace() + "/" + p}, nil
}

func newPoolInformer(c *Cluster, namespace string, opts func(*metav1.ListOptions)) cache.SharedIndexInformer {
	api := c.Virt.PoolV1beta1()
	return cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			opts(&o)
			return api.VirtualMachinePools(namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			opts(&o)
			return api.VirtualMachinePools(namespace).Watch(ctx, o)
		},
	}, &poolv1.VirtualMachinePool{}, 0, cache.Indexers{})
}

// KickPool asks for a fresh look at one pool and its members.
func (w *Watcher) KickPool(namespace, name string, requestID int64) {
	w.queue.Add(vmKey{Namespace: namespace, Name: name, RequestID: requestID, Pool: true})
}

// reconcilePool observes a pool with its members, their instances and
// disks (all from the caches), as one observation of the pool's request.
// rec is the pool recorded for the request; only members it controls count,
// and only instances and disks those members control.
func (w *Watcher) reconcilePool(ctx context.Context, key vmKey, rec store.Watched) error {
	nsName := key.Namespace + "/" + key.Name
	rid := strconv.FormatInt(key.RequestID, 10)
	ours := func(p *poolv1.VirtualMachinePool) bool { return isRecorded(p, rec, rid) }
	var p, squatter *poolv1.VirtualMachinePool
	if obj, ok := cached(w.poolInformer(), nsName); ok {
		if got := obj.(*poolv1.VirtualMachinePool); ours(got) {
			p = got
		}
	}
	if p == nil {
		// The cache may lag a create made moments ago.
		getCtx, cancel := w.cluster.callCtx(ctx)
		got, err := w.cluster.Virt.PoolV1beta1().VirtualMachinePools(key.Namespace).Get(getCtx, key.Name, metav1.GetOptions{})
		cancel()
		switch {
		case errors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("confirm pool %s is gone: %w", nsName, err)
		case ours(got):
			p = got
		case got.Labels[LabelRequest] == rid:
			squatter = got
		}
	}
	var members []*virtv1.VirtualMachine
	byName := map[string]*virtv1.VirtualMachine{}
	if p != nil {
		objs, err := w.vms.GetIndexer().ByIndex(poolIndex, nsName)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			vm := obj.(*virtv1.VirtualMachine)
			if vm.Labels[LabelRequest] != rid {
				continue
			}
			if m := ownedBy(w, key, vm, p, "VirtualMachine"); m != nil {
				members = append(members, m)
				byName[m.Name] = m
			}
		}
	}
	vmi := func(name string) *virtv1.VirtualMachineInstance {
		m := byName[name]
		if obj, ok, _ := w.vmis.GetStore().GetByKey(key.Namespace + "/" + name); ok && m != nil {
			if v := obj.(*virtv1.VirtualMachineInstance); v.Labels[LabelRequest] == rid {
				return ownedBy(w, key, v, m, "VirtualMachineInstance")
			}
		}
		return nil
	}
	dv := func(member string) *cdiv1.DataVolume {
		// KubeVirt appends the member's index to each DataVolume template's name.
		idx := strings.TrimPrefix(member, key.Name+"-")
		m := byName[member]
		if obj, ok := cached(w.dataVolumes(), key.Namespace+"/"+DataVolumeName(key.Name)+"-"+idx); ok && m != nil {
			return ownedBy(w, key, obj.(*cdiv1.DataVolume), m, "DataVolume")
		}
		return nil
	}
	o := ObservePool(p, members, vmi, dv)
	w.failIfStuck(&o, rec)
	o.Namespace, o.Name, o.UID = key.Namespace, key.Name, rec.UID
	if p != nil {
		o.UID = string(p.UID)
	}
	w.failpoint("observe")
	_, applied, err := w.record(ctx, key, o, rec)
	if applied && squatter != nil {
		w.foreign(key, "VirtualMachinePool", "another pool took the recorded one's place")
	}
	return err
}
