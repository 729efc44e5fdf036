package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	virtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"paddock/internal/store"
)

// Watcher keeps request states in step with the cluster. One set of
// informers (VirtualMachines, VirtualMachineInstances, DataVolumes,
// VirtualMachinePools, each selected by Paddock's managed-by label across
// namespaces) feeds a work queue keyed by VM; each key is reconciled by
// reading the caches and writing an observation to the store, which changes
// rows only on change. The DataVolume and pool informers run only while the
// cluster serves their APIs (discovery.go): a cluster without CDI or without
// VirtualMachinePools has no such objects, and an informer of an API that is
// not served would never sync.
type Watcher struct {
	store     *store.Store
	cluster   *Cluster
	log       *slog.Logger
	queue     workqueue.TypedRateLimitingInterface[vmKey]
	namespace string
	vms       cache.SharedIndexInformer
	vmis      cache.SharedIndexInformer
	synced    atomic.Bool
	apis      atomic.Pointer[APIs]
	// optMu guards dvs and pools, nil until their API is found served.
	optMu sync.RWMutex
	dvs   cache.SharedIndexInformer
	pools cache.SharedIndexInformer
	// Metrics, when set, records state changes and time to running.
	Metrics *Metrics
	// StuckAfter fails a request whose VM has not come up this long after
	// it was created or started.
	StuckAfter time.Duration
	// Resync re-observes every VM this often, repairing anything missed
	// while PostgreSQL was away.
	Resync time.Duration
	// Discovery is how often the watcher asks which APIs the cluster
	// serves (also at each Resync), to start the informers of an API
	// installed since.
	Discovery time.Duration
	// Failpoint, when set, is called at named points of reconciling
	// ("observe" before every observation is written, "observe-running"
	// before one that would record the VM running); the crash tests make it
	// kill the process there.
	Failpoint func(name string)
}

func (w *Watcher) failpoint(name string) {
	if w.Failpoint != nil {
		w.Failpoint(name)
	}
}

// vmKey names a VM and the request it belongs to (known from its labels even
// after the VM is gone from the cache).
type vmKey struct {
	Namespace, Name string
	RequestID       int64
	// Pool is set when Name is a VirtualMachinePool: the key stands for the
	// pool and all its members.
	Pool bool
}

// NewWatcher builds the informers over every namespace; Run starts them.
func NewWatcher(st *store.Store, c *Cluster, log *slog.Logger) *Watcher {
	return NewNamespacedWatcher(st, c, log, metav1.NamespaceAll)
}

// NewNamespacedWatcher watches one namespace only (tests that share an API
// server use it to keep out of each other's way).
func NewNamespacedWatcher(st *store.Store, c *Cluster, log *slog.Logger, namespace string) *Watcher {
	w := &Watcher{
		store: st, cluster: c, log: log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[vmKey](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[vmKey]{Name: "paddock-watcher"}),
		namespace:  namespace,
		Resync:     5 * time.Minute,
		Discovery:  30 * time.Second,
		StuckAfter: 15 * time.Minute,
	}
	vmAPI := c.Virt.KubevirtV1()
	w.vms = cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			managedOnly(&o)
			return listSlimVMs(ctx, o, listPageSize, vmAPI.VirtualMachines(namespace).List)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			managedOnly(&o)
			return slimWatch(vmAPI.VirtualMachines(namespace).Watch(ctx, o))
		},
	}, &virtv1.VirtualMachine{}, 0, cache.Indexers{})
	w.vmis = cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			managedOnly(&o)
			return listSlimVMIs(ctx, o, listPageSize, vmAPI.VirtualMachineInstances(namespace).List)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			managedOnly(&o)
			return slimWatch(vmAPI.VirtualMachineInstances(namespace).Watch(ctx, o))
		},
	}, &virtv1.VirtualMachineInstance{}, 0, cache.Indexers{})
	_ = w.vms.AddIndexers(cache.Indexers{poolIndex: poolIndexFunc})
	_ = w.vmis.AddIndexers(cache.Indexers{poolIndex: poolIndexFunc})
	// The caches keep only the fields the watcher reads: the lists and the
	// watches above hand the informers slim objects (cache_transform.go).
	for _, inf := range []cache.SharedIndexInformer{w.vms, w.vmis} {
		_, _ = inf.AddEventHandler(w.handler())
	}
	return w
}

func (w *Watcher) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    w.enqueue,
		UpdateFunc: func(_, obj any) { w.enqueue(obj) },
		DeleteFunc: w.enqueue,
	}
}

func managedOnly(o *metav1.ListOptions) { o.LabelSelector = LabelManagedBy + "=" + ManagedByValue }

func newDataVolumeInformer(c *Cluster, namespace string) cache.SharedIndexInformer {
	api := c.CDI.CdiV1beta1()
	return cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			managedOnly(&o)
			return api.DataVolumes(namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			managedOnly(&o)
			return api.DataVolumes(namespace).Watch(ctx, o)
		},
	}, &cdiv1.DataVolume{}, 0, cache.Indexers{})
}

// dataVolumes is the DataVolume informer, nil while the cluster serves no
// DataVolumes (and then has none).
func (w *Watcher) dataVolumes() cache.SharedIndexInformer {
	w.optMu.RLock()
	defer w.optMu.RUnlock()
	return w.dvs
}

// poolInformer is the VirtualMachinePool informer, nil while the cluster
// serves no pools (and then has none).
func (w *Watcher) poolInformer() cache.SharedIndexInformer {
	w.optMu.RLock()
	defer w.optMu.RUnlock()
	return w.pools
}

// cached returns the object stored under key by inf, which may be nil (an
// API the cluster does not serve: no such object).
func cached(inf cache.SharedIndexInformer, key string) (any, bool) {
	if inf == nil {
		return nil, false
	}
	obj, ok, _ := inf.GetStore().GetByKey(key)
	return obj, ok
}

// APIs returns which optional APIs the cluster served when last asked
// (Known is false before the first answer).
func (w *Watcher) APIs() APIs {
	if a := w.apis.Load(); a != nil {
		return *a
	}
	return APIs{}
}

// Lacks is APIs().Lacks: what the cluster lacks, as last seen, to run
// template spec (as a pool when pool is set).
func (w *Watcher) Lacks(spec store.TemplateSpec, pool bool) []store.FieldError {
	return w.APIs().Lacks(spec, pool)
}

// discover asks which APIs the cluster serves until it gets an answer or
// ctx ends, waiting longer after each failure, up to Discovery.
func (w *Watcher) discover(ctx context.Context) (APIs, error) {
	wait := time.Second
	for {
		a, err := w.cluster.ServedAPIs(ctx)
		if err == nil {
			return a, nil
		}
		w.log.Error("watcher: cannot tell which APIs the cluster serves; not watching yet", "err", err)
		select {
		case <-ctx.Done():
			return APIs{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, max(w.Discovery, time.Second))
	}
}

// startServed starts the informers of the optional APIs a says are served
// that are not running yet, and returns them.
func (w *Watcher) startServed(ctx context.Context, a APIs) []cache.SharedIndexInformer {
	w.optMu.Lock()
	defer w.optMu.Unlock()
	var started []cache.SharedIndexInformer
	if a.DataVolumes && w.dvs == nil {
		w.dvs = newDataVolumeInformer(w.cluster, w.namespace)
		started = append(started, w.dvs)
	}
	if a.Pools && w.pools == nil {
		w.pools = newPoolInformer(w.cluster, w.namespace, managedOnly)
		started = append(started, w.pools)
	}
	for _, inf := range started {
		_, _ = inf.AddEventHandler(w.handler())
		go inf.RunWithContext(ctx)
	}
	w.apis.Store(&a)
	return started
}

// rediscover asks again which APIs the cluster serves and starts the
// informers of those installed since.
func (w *Watcher) rediscover(ctx context.Context) {
	before := w.APIs()
	a, err := w.cluster.ServedAPIs(ctx)
	if err != nil {
		w.log.Warn("watcher: cannot tell which APIs the cluster serves; keeping what it served before", "err", err)
		return
	}
	w.startServed(ctx, a)
	if a != before {
		w.log.Info("watcher: the APIs the cluster serves changed; watching those served",
			"datavolumes", a.DataVolumes, "pools", a.Pools, "missing", a.Missing())
	}
}

// enqueue maps any watched object to its VM's key. VMIs share their VM's
// name; DataVolumes carry the request label and are mapped by request.
func (w *Watcher) enqueue(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	id, err := strconv.ParseInt(m.GetLabels()[LabelRequest], 10, 64)
	if err != nil {
		return
	}
	if pool := m.GetLabels()[LabelPool]; pool != "" {
		// A pool, or a member VM, instance or disk of one: all are the
		// pool's request, never a VM of their own.
		w.queue.Add(vmKey{Namespace: m.GetNamespace(), Name: pool, RequestID: id, Pool: true})
		return
	}
	name := m.GetName()
	if dv, ok := obj.(*cdiv1.DataVolume); ok {
		name = vmNameOfDataVolume(dv)
	}
	w.queue.Add(vmKey{Namespace: m.GetNamespace(), Name: name, RequestID: id})
}

func vmNameOfDataVolume(dv *cdiv1.DataVolume) string {
	for _, o := range dv.OwnerReferences {
		if o.Kind == "VirtualMachine" {
			return o.Name
		}
	}
	const suffix = "-rootdisk"
	if n := dv.Name; len(n) > len(suffix) && n[len(n)-len(suffix):] == suffix {
		return n[:len(n)-len(suffix)]
	}
	return dv.Name
}

// Kick asks for a fresh look at one VM, for example right after the
// provisioner recorded it.
func (w *Watcher) Kick(namespace, name string, requestID int64) {
	w.queue.Add(vmKey{Namespace: namespace, Name: name, RequestID: requestID})
}

// Synced reports whether the informers of the APIs the cluster served at
// start have completed their first list.
func (w *Watcher) Synced() bool { return w.synced.Load() }

// Run finds which APIs the cluster serves, starts the informers that can
// work there and reconciles until ctx ends, asking again every Discovery
// and Resync for APIs installed since.
func (w *Watcher) Run(ctx context.Context, workers int) error {
	defer w.queue.ShutDown()
	apis, err := w.discover(ctx)
	if err != nil {
		return fmt.Errorf("watcher: discover APIs: %w", err)
	}
	synced := []cache.InformerSynced{w.vms.HasSynced, w.vmis.HasSynced}
	go w.vms.RunWithContext(ctx)
	go w.vmis.RunWithContext(ctx)
	for _, inf := range w.startServed(ctx, apis) {
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("watcher: informers did not sync: %w", ctx.Err())
	}
	// The first lists are the process's peak: pages of whole objects
	// decoded, slimmed and dropped. Give that memory back to the system
	// now rather than over the minutes the runtime's scavenger would take;
	// a resident set that stays at the peak looks like a leak to whoever
	// watches it. Once, at start.
	debug.FreeOSMemory()
	w.synced.Store(true)
	w.log.Info("watcher synced", "vms", len(w.vms.GetStore().ListKeys()), "missing_apis", apis.Missing())
	// Requests whose VM vanished while Paddock was not watching.
	if err := w.resyncAll(ctx); err != nil {
		w.log.Error("watcher: initial resync", "err", err)
	}
	for range workers {
		go func() {
			for w.processNext(ctx) {
			}
		}()
	}
	t := time.NewTicker(w.Resync)
	defer t.Stop()
	d := time.NewTicker(max(w.Discovery, time.Second))
	defer d.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.C:
			w.rediscover(ctx)
		case <-t.C:
			w.rediscover(ctx)
			if err := w.resyncAll(ctx); err != nil {
				w.log.Error("watcher: resync", "err", err)
			}
		}
	}
}

// resyncAll enqueues every request the store believes has a VM, and every
// VM in the cache.
func (w *Watcher) resyncAll(ctx context.Context) error {
	for _, obj := range w.vms.GetStore().List() {
		w.enqueue(obj)
	}
	live, err := w.store.RequestsWithVM(ctx)
	if err != nil {
		return err
	}
	if pools := w.poolInformer(); pools != nil {
		for _, obj := range pools.GetStore().List() {
			w.enqueue(obj)
		}
	}
	for _, r := range live {
		w.queue.Add(vmKey{Namespace: r.VM.Namespace, Name: r.VM.Name, RequestID: r.ID, Pool: r.Pool})
	}
	return nil
}

func (w *Watcher) processNext(ctx context.Context) bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	if err := w.reconcile(ctx, key); err != nil {
		w.log.Warn("watcher: reconcile failed, will retry", "request_id", key.RequestID,
			"vm", key.Namespace+"/"+key.Name, "err", err)
		w.queue.AddRateLimited(key)
		return true
	}
	w.queue.Forget(key)
	return true
}

func (w *Watcher) reconcile(ctx context.Context, key vmKey) error {
	rec, err := w.store.WatchedObject(ctx, key.RequestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		w.foreign(key, w.kindAt(key), "no such request")
		return nil
	case err != nil:
		return err
	case !rec.Recorded():
		// The provisioner asks for a look once it has recorded what it made.
		return nil
	case key.Namespace != rec.Namespace || key.Name != rec.Name || key.Pool != rec.Pool:
		// Anyone who may create a VM may copy Paddock's labels onto it.
		w.foreign(key, w.kindAt(key), "not the request's recorded object")
		return nil
	}
	if key.Pool {
		return w.reconcilePool(ctx, key, rec)
	}
	nsName := key.Namespace + "/" + key.Name
	rid := strconv.FormatInt(key.RequestID, 10)
	ours := func(vm *virtv1.VirtualMachine) bool { return isRecorded(vm, rec, rid) }
	var vm, squatter *virtv1.VirtualMachine
	if obj, ok, _ := w.vms.GetStore().GetByKey(nsName); ok {
		if got := obj.(*virtv1.VirtualMachine); ours(got) {
			vm = got
		}
	}
	if vm == nil {
		// The cache may lag a create made moments ago: ask the API server
		// before calling a VM gone.
		getCtx, cancel := w.cluster.callCtx(ctx)
		got, err := w.cluster.Virt.KubevirtV1().VirtualMachines(key.Namespace).Get(getCtx, key.Name, metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("confirm VM %s is gone: %w", nsName, err)
		case ours(got):
			// It exists: the informer will deliver it and this key comes
			// back. Recording its status now, ahead of the cache, would let
			// the cache move the request back when it catches up (a watch
			// resumed after an outage replays each status the VM went
			// through: running, then provisioning again, then running).
			return nil
		case got.Labels[LabelRequest] == rid:
			// Another VM with the request's label took the recorded one's
			// place: the recorded one is gone.
			squatter = got
		}
	}
	var vmi *virtv1.VirtualMachineInstance
	var dv *cdiv1.DataVolume
	if vm != nil {
		if obj, ok, _ := w.vmis.GetStore().GetByKey(nsName); ok {
			vmi = ownedBy(w, key, obj.(*virtv1.VirtualMachineInstance), vm, "VirtualMachineInstance")
		}
		if obj, ok := cached(w.dataVolumes(), key.Namespace+"/"+DataVolumeName(key.Name)); ok {
			dv = ownedBy(w, key, obj.(*cdiv1.DataVolume), vm, "DataVolume")
		}
	}
	o := Observe(vm, vmi, dv)
	w.failIfStuck(&o, rec)
	o.Namespace, o.Name, o.UID = key.Namespace, key.Name, rec.UID
	if vm != nil {
		o.UID = string(vm.UID)
	}
	var rvs []string
	if vm != nil {
		rvs = append(rvs, vm.ResourceVersion)
	}
	if vmi != nil {
		rvs = append(rvs, vmi.ResourceVersion)
	}
	if dv != nil {
		rvs = append(rvs, dv.ResourceVersion)
	}
	o.Version = newestVersion(rvs...)
	w.failpoint("observe")
	if o.State == store.StateRunning {
		w.failpoint("observe-running")
	}
	moved, applied, err := w.record(ctx, key, o, rec)
	if err != nil {
		return err
	}
	if applied && squatter != nil {
		w.foreign(key, "VirtualMachine", "another VM took the recorded one's place")
	}
	if moved == store.StateRunning && vm != nil {
		w.Metrics.running(vm.CreationTimestamp.Time)
	}
	return nil
}

// failIfStuck turns o, an observation of a request provisioning for longer
// than StuckAfter whose VM has still not come up, into a failure with the
// VM's last status as the reason. It applies only while the request is
// still provisioning (OnlyFrom).
func (w *Watcher) failIfStuck(o *store.Observation, rec store.Watched) {
	if w.StuckAfter <= 0 || rec.ProvisioningSince.IsZero() || o.Gone ||
		o.State != store.StateProvisioning && o.State != "" ||
		time.Since(rec.ProvisioningSince) <= w.StuckAfter {
		return
	}
	status := o.Status
	if status == "" {
		status = "none"
	}
	o.State, o.OnlyFrom = store.StateFailed, []store.State{store.StateProvisioning}
	o.Reason = strings.TrimSpace(fmt.Sprintf("The VM did not start within %s (its last status was %s). %s",
		w.StuckAfter.Round(time.Second), status, o.Reason))
}

// isRecorded reports whether obj, found in the place recorded for request
// rid, is the object recorded there: the one with the recorded UID, or
// before its UID is known, one with the request's label.
func isRecorded(obj metav1.Object, rec store.Watched, rid string) bool {
	if rec.UID != "" {
		return string(obj.GetUID()) == rec.UID
	}
	return obj.GetLabels()[LabelRequest] == rid
}

// ownedBy returns obj, an instance or DataVolume found in owner's place, if
// owner (the request's VM or pool member) controls it, and otherwise nil,
// counting obj as foreign unless it is a leftover of an earlier VM of the
// same name (one being replaced by a rebuild).
func ownedBy[T metav1.Object](w *Watcher, key vmKey, obj T, owner metav1.Object, kind string) T {
	if metav1.IsControlledBy(obj, owner) {
		return obj
	}
	var none T
	if ref := metav1.GetControllerOf(obj); ref == nil || ref.Name != owner.GetName() {
		w.foreign(vmKey{Namespace: obj.GetNamespace(), Name: obj.GetName(), RequestID: key.RequestID}, kind,
			"not controlled by the request's "+owner.GetNamespace()+"/"+owner.GetName())
	}
	return none
}

// foreign counts and logs an object that carries a request's label but is
// not the request's, which the watcher ignores.
func (w *Watcher) foreign(key vmKey, kind, why string) {
	w.Metrics.foreign(kind)
	w.log.Warn("watcher: ignored an object labelled with a request it does not belong to",
		"request_id", key.RequestID, "kind", kind, "object", key.Namespace+"/"+key.Name, "why", why)
}

// kindAt names the kind of the object that brought key to the watcher, as
// far as the caches still hold it.
func (w *Watcher) kindAt(key vmKey) string {
	nsName := key.Namespace + "/" + key.Name
	rid := strconv.FormatInt(key.RequestID, 10)
	labelled := func(inf cache.SharedIndexInformer, k string) bool {
		obj, ok := cached(inf, k)
		m, isMeta := obj.(metav1.Object)
		return ok && isMeta && m.GetLabels()[LabelRequest] == rid
	}
	if key.Pool {
		if labelled(w.poolInformer(), nsName) {
			return "VirtualMachinePool"
		}
		if objs, _ := w.vms.GetIndexer().ByIndex(poolIndex, nsName); len(objs) > 0 {
			return "VirtualMachine"
		}
		return "VirtualMachinePool"
	}
	switch {
	case labelled(w.vmis, nsName) && !labelled(w.vms, nsName):
		return "VirtualMachineInstance"
	case labelled(w.dataVolumes(), key.Namespace+"/"+DataVolumeName(key.Name)) && !labelled(w.vms, nsName):
		return "DataVolume"
	}
	return "VirtualMachine"
}

// record stores an observation of key's VM or pool, looks again once the
// stuck deadline has passed while it provisions (in case nothing else
// changes), and logs and counts a state change. It returns the state the
// request moved to, or "", and whether the store took the observation: it
// does not when what is recorded for the request changed since the watcher
// read it (a rebuild recorded its new VM), and the watcher then looks again.
func (w *Watcher) record(ctx context.Context, key vmKey, o store.Observation, rec store.Watched) (store.State, bool, error) {
	moved, err := w.store.Observe(ctx, key.RequestID, o)
	if errors.Is(err, store.ErrNotRecorded) {
		w.queue.AddRateLimited(key)
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("record observation: %w", err)
	}
	if !rec.ProvisioningSince.IsZero() && w.StuckAfter > 0 && moved == "" && o.State != store.StateFailed {
		// Nothing else may change before the deadline: look again then.
		w.queue.AddAfter(key, time.Until(rec.ProvisioningSince.Add(w.StuckAfter))+time.Second)
	}
	if moved != "" {
		kind := "vm"
		if key.Pool {
			kind = "pool"
		}
		w.Metrics.stateChanged()
		w.log.Info("request state changed", "request_id", key.RequestID, kind, key.Namespace+"/"+key.Name,
			"state", moved, kind+"_status", o.Status)
	}
	return moved, true, nil
}

// newestVersion is the highest of the resourceVersions rvs, or 0 when one
// is not a number: the API server's are etcd revisions, increasing across
// all objects, but a client may not assume it, so anything else turns the
// staleness check off.
func newestVersion(rvs ...string) int64 {
	var newest int64
	for _, rv := range rvs {
		v, err := strconv.ParseInt(rv, 10, 64)
		if err != nil {
			return 0
		}
		newest = max(newest, v)
	}
	return newest
}
