package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1beta1"
	cdifake "kubevirt.io/client-go/containerizeddataimporter/fake"
	virtfake "kubevirt.io/client-go/kubevirt/fake"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"paddock/internal/store"
)

// Simulator plays the part of KubeVirt's controllers (and CDI's) in the
// simulated cluster, so that `portal dev` and the tests see the whole
// journey without a cluster: a VM goes Provisioning → Starting → Running with
// an IP, each step after Delay; an image whose name contains "broken" ends in
// ErrImagePull. Its objects are kept in PostgreSQL, so a restart of the
// portal finds its VMs where it left them.
type Simulator struct {
	cluster *Cluster
	store   *store.Store
	log     *slog.Logger
	// Delay is the time each step of a VM's start takes.
	Delay time.Duration
	queue workqueue.TypedRateLimitingInterface[string]
	vms   cache.SharedIndexInformer
	vmis  cache.SharedIndexInformer
	// Namespace, when set, limits the stand-in to one namespace.
	Namespace string
	// Broken, when set, makes the VMs it picks fail to pull their image, as
	// an image name with "broken" in it does: the tests' injected failure.
	Broken func(vm *virtv1.VirtualMachine) bool
	mu     sync.Mutex
	since  map[string]time.Time
	// pools plays KubeVirt's pool controller (sim_pool.go).
	pools *simPools
}

// Kinds under which simulated objects are stored.
const (
	simVM  = "VirtualMachine"
	simVMI = "VirtualMachineInstance"
	simDV  = "DataVolume"
	simNS  = "Namespace"
)

// NewSimulatedCluster returns a Cluster backed by in-memory fake clientsets,
// restored from the store, and the Simulator that drives it. Namespaces are
// created on demand, as a newcomer has none.
func NewSimulatedCluster(ctx context.Context, st *store.Store, log *slog.Logger, delay time.Duration) (*Cluster, *Simulator, error) {
	kube := kubefake.NewSimpleClientset()
	virt := virtfake.NewSimpleClientset()
	cdi := cdifake.NewSimpleClientset()
	objs, err := st.SimObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range objs {
		if err := restore(ctx, kube, virt, cdi, o); err != nil {
			return nil, nil, fmt.Errorf("restore simulated %s %s/%s: %w", o.Kind, o.Namespace, o.Name, err)
		}
	}
	// Like etcd, the simulated cluster keeps a created VM before it answers,
	// so a portal killed right after a create finds the VM on restart.
	virt.PrependReactor("create", "virtualmachines", func(a k8stesting.Action) (bool, runtime.Object, error) {
		vm, ok := a.(k8stesting.CreateAction).GetObject().(*virtv1.VirtualMachine)
		if !ok {
			return false, nil, nil
		}
		if _, err := virt.Tracker().Get(virtv1.SchemeGroupVersion.WithResource("virtualmachines"), vm.Namespace, vm.Name); err == nil {
			return false, nil, nil // the tracker answers AlreadyExists
		}
		// What the API server sets on create.
		if vm.CreationTimestamp.IsZero() {
			vm.CreationTimestamp = metav1.Now()
		}
		if vm.UID == "" {
			vm.UID = types.UID(uuid.NewString())
		}
		b, err := json.Marshal(vm)
		if err != nil {
			return true, nil, err
		}
		if err := st.SaveSimObject(ctx, store.SimObject{Kind: simVM, Namespace: vm.Namespace, Name: vm.Name, Body: b}); err != nil {
			return true, nil, apierrors.NewServiceUnavailable("simulated cluster storage unavailable")
		}
		return false, nil, nil
	})
	addPoolReactor(ctx, virt, st)
	c := &Cluster{Kube: kube, Virt: virt, CDI: cdi, CreateNamespaces: true, Timeout: 10 * time.Second, Simulated: true}
	return c, NewSimulator(c, st, log, delay), nil
}

// NewSimulator plays KubeVirt's controllers for the VMs of cluster c: the
// simulated cluster's fakes, or a real API server in tests where no
// KubeVirt runs (it writes VM status through the status subresource and
// creates instances with their status, as virt-controller does).
func NewSimulator(c *Cluster, st *store.Store, log *slog.Logger, delay time.Duration) *Simulator {
	s := &Simulator{
		cluster: c, store: st, log: log, Delay: delay, since: map[string]time.Time{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}
	vmAPI := c.Virt.KubevirtV1()
	s.vms = cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return vmAPI.VirtualMachines(metav1.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return vmAPI.VirtualMachines(metav1.NamespaceAll).Watch(ctx, o)
		},
	}, &virtv1.VirtualMachine{}, 0, cache.Indexers{})
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			s.queue.Add(key)
		}
	}
	_, _ = s.vms.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	})
	// A deleted instance (a restart) is noticed, forgotten and restarted.
	s.vmis = cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return vmAPI.VirtualMachineInstances(metav1.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return vmAPI.VirtualMachineInstances(metav1.NamespaceAll).Watch(ctx, o)
		},
	}, &virtv1.VirtualMachineInstance{}, 0, cache.Indexers{})
	_, _ = s.vmis.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			return
		}
		ns, name, _ := strings.Cut(key, "/")
		_ = st.SaveSimObject(context.Background(), store.SimObject{Kind: simVMI, Namespace: ns, Name: name})
		s.queue.Add(key)
	}})
	s.addPoolController()
	return s
}

func restore(ctx context.Context, kube *kubefake.Clientset, virt *virtfake.Clientset, cdi *cdifake.Clientset, o store.SimObject) error {
	var err error
	switch o.Kind {
	case simNS:
		var ns corev1.Namespace
		if err = json.Unmarshal(o.Body, &ns); err == nil {
			ns.ResourceVersion = ""
			_, err = kube.CoreV1().Namespaces().Create(ctx, &ns, metav1.CreateOptions{})
		}
	case simVM:
		var vm virtv1.VirtualMachine
		if err = json.Unmarshal(o.Body, &vm); err == nil {
			vm.ResourceVersion = ""
			_, err = virt.KubevirtV1().VirtualMachines(vm.Namespace).Create(ctx, &vm, metav1.CreateOptions{})
		}
	case simVMI:
		var vmi virtv1.VirtualMachineInstance
		if err = json.Unmarshal(o.Body, &vmi); err == nil {
			vmi.ResourceVersion = ""
			_, err = virt.KubevirtV1().VirtualMachineInstances(vmi.Namespace).Create(ctx, &vmi, metav1.CreateOptions{})
		}
	case simPool:
		var p poolv1.VirtualMachinePool
		if err = json.Unmarshal(o.Body, &p); err == nil {
			p.ResourceVersion = ""
			_, err = virt.PoolV1beta1().VirtualMachinePools(p.Namespace).Create(ctx, &p, metav1.CreateOptions{})
		}
	case simDV:
		var dv cdiv1.DataVolume
		if err = json.Unmarshal(o.Body, &dv); err == nil {
			dv.ResourceVersion = ""
			_, err = cdi.CdiV1beta1().DataVolumes(dv.Namespace).Create(ctx, &dv, metav1.CreateOptions{})
		}
	}
	return err
}

// Run drives simulated VMs until ctx ends.
func (s *Simulator) Run(ctx context.Context) {
	defer s.queue.ShutDown()
	go s.runPools(ctx)
	go s.vms.RunWithContext(ctx)
	go s.vmis.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), s.vms.HasSynced, s.vmis.HasSynced) {
		return
	}
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	for {
		key, quit := s.queue.Get()
		if quit {
			return
		}
		if ctx.Err() != nil {
			// Stopped: the informers are too, so their caches may be a step
			// behind the last write; a reconcile from them would record that
			// older state over the newer one. Drain without acting.
			s.queue.Done(key)
			continue
		}
		if err := s.reconcile(ctx, key); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("simulator: reconcile failed", "vm", key, "err", err)
				s.queue.AddRateLimited(key)
			}
		} else {
			s.queue.Forget(key)
		}
		s.queue.Done(key)
	}
}

// wait reports how long the VM must still stay in its current step.
func (s *Simulator) wait(key string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.since[key]
	if !ok {
		s.since[key] = time.Now()
		return s.Delay
	}
	return s.Delay - time.Since(t)
}

func (s *Simulator) stepped(key string) {
	s.mu.Lock()
	s.since[key] = time.Now()
	s.mu.Unlock()
}

func (s *Simulator) reconcile(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	if s.Namespace != "" && ns != s.Namespace {
		return nil
	}
	virt := s.cluster.Virt.KubevirtV1()
	obj, exists, err := s.vms.GetStore().GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		s.mu.Lock()
		delete(s.since, key)
		s.mu.Unlock()
		err := virt.VirtualMachineInstances(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		dvs, err := s.cluster.CDI.CdiV1beta1().DataVolumes(ns).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			// A real API server without CDI: no DataVolumes to delete.
			dvs, err = &cdiv1.DataVolumeList{}, nil
		}
		if err != nil {
			return err
		}
		for _, dv := range dvs.Items {
			if metav1.IsControlledBy(&dv, &metav1.ObjectMeta{Name: name}) || vmNameOfDataVolume(&dv) == name {
				_ = s.cluster.CDI.CdiV1beta1().DataVolumes(ns).Delete(ctx, dv.Name, metav1.DeleteOptions{})
				_ = s.persist(ctx, store.SimObject{Kind: simDV, Namespace: ns, Name: dv.Name})
			}
		}
		_ = s.persist(ctx, store.SimObject{Kind: simVMI, Namespace: ns, Name: name})
		return s.persist(ctx, store.SimObject{Kind: simVM, Namespace: ns, Name: name})
	}
	vm := obj.(*virtv1.VirtualMachine).DeepCopy()
	if err := s.save(ctx, simVM, ns, name, vm); err != nil {
		return err
	}
	s.saveNamespace(ctx, ns)
	vmi, err := virt.VirtualMachineInstances(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		vmi, err = nil, nil
	}
	if err != nil {
		return err
	}
	if vm.Spec.Template == nil {
		return nil // not a VM this stand-in can run (KubeVirt's webhook would have refused it)
	}
	halted := vm.Spec.RunStrategy != nil && *vm.Spec.RunStrategy == virtv1.RunStrategyHalted
	status := vm.Status.PrintableStatus

	if halted {
		if vmi != nil {
			if status != virtv1.VirtualMachineStatusStopping {
				s.stepped(key)
				return s.setStatus(ctx, vm, virtv1.VirtualMachineStatusStopping, false)
			}
			if d := s.wait(key); d > 0 {
				s.queue.AddAfter(key, d)
				return nil
			}
			if err := virt.VirtualMachineInstances(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			_ = s.persist(ctx, store.SimObject{Kind: simVMI, Namespace: ns, Name: name})
		}
		if status != virtv1.VirtualMachineStatusStopped {
			s.stepped(key)
			return s.setStatus(ctx, vm, virtv1.VirtualMachineStatusStopped, false)
		}
		return nil
	}

	if status == virtv1.VirtualMachineStatusErrImagePull {
		return nil
	}
	if strings.Contains(vmImage(vm), "stuck") && status == virtv1.VirtualMachineStatusProvisioning {
		return nil // an image that never finishes importing
	}
	if d := s.wait(key); d > 0 && status != virtv1.VirtualMachineStatusRunning {
		s.queue.AddAfter(key, d)
		return nil
	}
	switch {
	case vmi == nil && status == virtv1.VirtualMachineStatusRunning: // restarted
		s.stepped(key)
		return s.setStatus(ctx, vm, virtv1.VirtualMachineStatusStarting, false)
	case vmi == nil && status != virtv1.VirtualMachineStatusProvisioning && status != virtv1.VirtualMachineStatusStarting:
		s.stepped(key)
		if err := s.createDataVolumes(ctx, vm); err != nil {
			return err
		}
		s.event(ctx, vm, corev1.EventTypeNormal, "SuccessfulCreate", "Started the virtual machine by creating the new virtual machine instance "+name)
		return s.setStatus(ctx, vm, virtv1.VirtualMachineStatusProvisioning, false)
	case brokenImage(vm) || (s.Broken != nil && s.Broken(vm)):
		s.stepped(key)
		s.event(ctx, vm, corev1.EventTypeWarning, "Failed", "Failed to pull image \""+vmImage(vm)+"\": "+simPullError(vmImage(vm)))
		return s.setStatus(ctx, vm, virtv1.VirtualMachineStatusErrImagePull, false)
	case vmi == nil:
		s.stepped(key)
		if err := s.finishDataVolumes(ctx, vm); err != nil {
			return err
		}
		vmi = &virtv1.VirtualMachineInstance{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: ns, Labels: vm.Spec.Template.ObjectMeta.Labels,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(vm, virtv1.VirtualMachineGroupVersionKind)},
			},
			Spec:   vm.Spec.Template.Spec,
			Status: virtv1.VirtualMachineInstanceStatus{Phase: virtv1.Scheduling},
		}
		created, err := virt.VirtualMachineInstances(ns).Create(ctx, vmi, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		if created != nil {
			if err := s.save(ctx, simVMI, ns, name, created); err != nil {
				return err
			}
		}
		return s.setStatus(ctx, vm, virtv1.VirtualMachineStatusStarting, false)
	case vmi.Status.Phase != virtv1.Running:
		s.stepped(key)
		vmi = vmi.DeepCopy()
		vmi.Status.Phase = virtv1.Running
		vmi.Status.NodeName = "sim-node-1"
		vmi.Status.Interfaces = []virtv1.VirtualMachineInstanceNetworkInterface{{Name: "default", IP: simIP(key), IPs: []string{simIP(key)}}}
		updated, err := virt.VirtualMachineInstances(ns).Update(ctx, vmi, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		if err := s.save(ctx, simVMI, ns, name, updated); err != nil {
			return err
		}
		s.event(ctx, vm, corev1.EventTypeNormal, "Started", "VirtualMachineInstance started")
		return s.setStatus(ctx, vm, virtv1.VirtualMachineStatusRunning, true)
	case status != virtv1.VirtualMachineStatusRunning:
		return s.setStatus(ctx, vm, virtv1.VirtualMachineStatusRunning, true)
	}
	return nil
}

func (s *Simulator) setStatus(ctx context.Context, vm *virtv1.VirtualMachine, st virtv1.VirtualMachinePrintableStatus, ready bool) error {
	vm.Status.PrintableStatus = st
	vm.Status.Ready = ready
	vm.Status.Created = st != virtv1.VirtualMachineStatusStopped && st != virtv1.VirtualMachineStatusProvisioning
	cond := virtv1.VirtualMachineCondition{Type: virtv1.VirtualMachineReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Now()}
	if ready {
		cond.Status = corev1.ConditionTrue
	}
	vm.Status.Conditions = []virtv1.VirtualMachineCondition{cond}
	if st == virtv1.VirtualMachineStatusErrImagePull {
		// As virt-controller reports a launcher pod whose image kubelet
		// cannot pull: the guest does not run, and the instance's
		// Synchronized condition, copied to the VM, has kubelet's message.
		vm.Status.Conditions[0].Reason, vm.Status.Conditions[0].Message = virtv1.GuestNotRunningReason, "Guest VM is not reported as running"
		vm.Status.Conditions = append(vm.Status.Conditions, virtv1.VirtualMachineCondition{
			Type:   virtv1.VirtualMachineConditionType(virtv1.VirtualMachineInstanceSynchronized),
			Status: corev1.ConditionFalse, Reason: "ErrImagePull", Message: simPullError(vmImage(vm)), LastTransitionTime: metav1.Now(),
		})
	}
	updated, err := s.cluster.Virt.KubevirtV1().VirtualMachines(vm.Namespace).UpdateStatus(ctx, vm, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	if s.Delay > 0 {
		s.queue.AddAfter(vm.Namespace+"/"+vm.Name, s.Delay)
	} else {
		s.queue.Add(vm.Namespace + "/" + vm.Name)
	}
	return s.save(ctx, simVM, vm.Namespace, vm.Name, updated)
}

func (s *Simulator) createDataVolumes(ctx context.Context, vm *virtv1.VirtualMachine) error {
	for _, t := range vm.Spec.DataVolumeTemplates {
		dv := &cdiv1.DataVolume{
			ObjectMeta: metav1.ObjectMeta{
				Name: t.Name, Namespace: vm.Namespace, Labels: t.Labels,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(vm, virtv1.VirtualMachineGroupVersionKind)},
			},
			Spec:   t.Spec,
			Status: cdiv1.DataVolumeStatus{Phase: cdiv1.ImportInProgress, Progress: "42.0%"},
		}
		created, err := s.cluster.CDI.CdiV1beta1().DataVolumes(vm.Namespace).Create(ctx, dv, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := s.save(ctx, simDV, vm.Namespace, t.Name, created); err != nil {
			return err
		}
	}
	return nil
}

func (s *Simulator) finishDataVolumes(ctx context.Context, vm *virtv1.VirtualMachine) error {
	dvs := s.cluster.CDI.CdiV1beta1().DataVolumes(vm.Namespace)
	for _, t := range vm.Spec.DataVolumeTemplates {
		dv, err := dvs.Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		dv.Status.Phase, dv.Status.Progress = cdiv1.Succeeded, "100.0%"
		updated, err := dvs.Update(ctx, dv, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		if err := s.save(ctx, simDV, vm.Namespace, t.Name, updated); err != nil {
			return err
		}
	}
	return nil
}

func (s *Simulator) save(ctx context.Context, kind, ns, name string, obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return s.persist(ctx, store.SimObject{Kind: kind, Namespace: ns, Name: name, Body: b})
}

// persist records o in the store. The step that changed o has reached the
// cluster by then, so the record is made even when ctx ends meanwhile (portal
// dev stopped, the fakes do not look at ctx): cancelled there, it would
// leave the stored cluster a step behind what the watcher saw and recorded.
func (s *Simulator) persist(ctx context.Context, o store.SimObject) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.store.SaveSimObject(ctx, o)
}

func (s *Simulator) saveNamespace(ctx context.Context, ns string) {
	if n, err := s.cluster.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		_ = s.save(ctx, simNS, "", ns, n)
	}
}

func (s *Simulator) event(ctx context.Context, vm *virtv1.VirtualMachine, typ, reason, msg string) {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: vm.Name + ".", Namespace: vm.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "VirtualMachine", Namespace: vm.Namespace, Name: vm.Name, UID: vm.UID, APIVersion: virtv1.GroupVersion.String(),
		},
		Type: typ, Reason: reason, Message: msg, FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: corev1.EventSource{Component: "virt-controller (simulated)"},
	}
	ev.Name = fmt.Sprintf("%s.%x", vm.Name, now.UnixNano())
	_, _ = s.cluster.Kube.CoreV1().Events(vm.Namespace).Create(ctx, ev, metav1.CreateOptions{})
}

func vmImage(vm *virtv1.VirtualMachine) string {
	if vm.Spec.Template == nil {
		return ""
	}
	for _, v := range vm.Spec.Template.Spec.Volumes {
		if v.ContainerDisk != nil {
			return v.ContainerDisk.Image
		}
	}
	for _, t := range vm.Spec.DataVolumeTemplates {
		switch {
		case t.Spec.Source != nil && t.Spec.Source.Registry != nil && t.Spec.Source.Registry.URL != nil:
			return *t.Spec.Source.Registry.URL
		case t.Spec.Source != nil && t.Spec.Source.HTTP != nil:
			return t.Spec.Source.HTTP.URL
		case t.Spec.SourceRef != nil:
			return t.Spec.SourceRef.Name
		}
	}
	return ""
}

func brokenImage(vm *virtv1.VirtualMachine) bool { return strings.Contains(vmImage(vm), "broken") }

// simPullError is the error kubelet reports for an image whose tag the
// registry does not have, as containerd words it.
func simPullError(image string) string {
	ref := image
	if !strings.Contains(ref, "@") && strings.LastIndex(ref, ":") <= strings.LastIndex(ref, "/") {
		ref += ":latest"
	}
	return fmt.Sprintf("rpc error: code = NotFound desc = failed to pull and unpack image %q: failed to resolve reference %q: %s: not found", ref, ref, ref)
}

// simIP gives each simulated VM a stable address in 10.244.0.0/16.
func simIP(key string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	n := h.Sum32()
	return fmt.Sprintf("10.244.%d.%d", (n>>8)%256, n%254+1)
}
