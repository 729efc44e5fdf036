package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	virtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"
)

// StandInVirtHandler stands in for KubeVirt's virt-handler on one node, the
// part that needs a real host (libvirt, QEMU, the pod's network namespace).
// It marks the node schedulable for KubeVirt and keeps its heartbeat fresh,
// as virt-handler does; moves each instance virt-controller has Scheduled
// onto the node to Running, reporting its interfaces with the launcher pod's
// IP on the pod network (what virt-handler reports for masquerade and
// bridge bindings); and honours stop: an instance being deleted is reported
// Succeeded, as virt-handler does once the guest has shut down. Pods,
// finalizers and the VirtualMachine's status are left to virt-controller.
type StandInVirtHandler struct {
	// Config authenticates as an administrator.
	Config *rest.Config
	// NodeName is the node this stand-in runs on.
	NodeName string

	cancel context.CancelFunc
	done   chan struct{}
}

// Start marks the node and starts handling instances until Stop.
func (h *StandInVirtHandler) Start(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(h.Config)
	if err != nil {
		return err
	}
	kv, err := kubevirt.NewForConfig(h.Config)
	if err != nil {
		return err
	}
	if err := h.heartbeat(ctx, cs); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	vmis := kv.KubevirtV1().VirtualMachineInstances(metav1.NamespaceAll)
	informer := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return vmis.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return vmis.Watch(ctx, o)
		},
	}, &virtv1.VirtualMachineInstance{}, 0, cache.Indexers{})
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		cancel()
		return err
	}
	go informer.RunWithContext(runCtx)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		cancel()
		return fmt.Errorf("kubetest: virt-handler stand-in: instance cache did not sync: %w", ctx.Err())
	}
	h.done = make(chan struct{})
	go func() {
		<-runCtx.Done()
		queue.ShutDown()
	}()
	go func() {
		// virt-handler refreshes its heartbeat every minute; virt-controller
		// fails the node's instances when it is five minutes old.
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				_ = h.heartbeat(runCtx, cs)
			}
		}
	}()
	go func() {
		defer close(h.done)
		for {
			key, quit := queue.Get()
			if quit {
				return
			}
			obj, exists, err := informer.GetIndexer().GetByKey(key)
			if err == nil && exists {
				err = h.sync(runCtx, cs, kv, obj.(*virtv1.VirtualMachineInstance).DeepCopy())
			}
			if err != nil && runCtx.Err() == nil {
				queue.AddRateLimited(key)
			} else {
				queue.Forget(key)
			}
			queue.Done(key)
		}
	}()
	return nil
}

// Stop stops handling instances.
func (h *StandInVirtHandler) Stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
}

// heartbeat labels the node schedulable and stamps virt-handler's heartbeat
// on it, as virt-handler's heartbeat loop does.
func (h *StandInVirtHandler) heartbeat(ctx context.Context, cs kubernetes.Interface) error {
	now, err := json.Marshal(metav1.Now())
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]string{virtv1.NodeSchedulable: "true"},
		"annotations": map[string]string{virtv1.VirtHandlerHeartbeat: string(now[1 : len(now)-1])},
	}})
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Nodes().Patch(ctx, h.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("kubetest: virt-handler stand-in: heartbeat: %w", err)
	}
	return nil
}

func (h *StandInVirtHandler) sync(ctx context.Context, cs kubernetes.Interface, kv kubevirt.Interface, vmi *virtv1.VirtualMachineInstance) error {
	if vmi.Status.NodeName != h.NodeName {
		return nil
	}
	switch {
	case vmi.DeletionTimestamp != nil && (vmi.Status.Phase == virtv1.Scheduled || vmi.Status.Phase == virtv1.Running):
		// The guest has been shut down (there is none to wait for).
		vmi.Status.Phase = virtv1.Succeeded
	case vmi.DeletionTimestamp == nil && vmi.Status.Phase == virtv1.Scheduled:
		ifaces, err := h.interfaces(ctx, cs, vmi)
		if err != nil {
			return err
		}
		vmi.Status.Phase = virtv1.Running
		vmi.Status.Interfaces = ifaces
	default:
		return nil
	}
	_, err := kv.KubevirtV1().VirtualMachineInstances(vmi.Namespace).Update(ctx, vmi, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Gone, or changed since it was read: the informer brings it back.
		return nil
	}
	return err
}

// interfaces reports each of the instance's interfaces as virt-handler
// does, the one on the pod network with the launcher pod's IP.
func (h *StandInVirtHandler) interfaces(ctx context.Context, cs kubernetes.Interface, vmi *virtv1.VirtualMachineInstance) ([]virtv1.VirtualMachineInstanceNetworkInterface, error) {
	pods, err := cs.CoreV1().Pods(vmi.Namespace).List(ctx, metav1.ListOptions{LabelSelector: virtv1.CreatedByLabel + "=" + string(vmi.UID)})
	if err != nil {
		return nil, err
	}
	podIP := ""
	for _, p := range pods.Items {
		if p.Spec.NodeName == h.NodeName && p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			podIP = p.Status.PodIP
		}
	}
	if podIP == "" {
		return nil, fmt.Errorf("kubetest: virt-handler stand-in: %s/%s has no running launcher pod", vmi.Namespace, vmi.Name)
	}
	onPod := map[string]bool{}
	for _, n := range vmi.Spec.Networks {
		if n.Pod != nil {
			onPod[n.Name] = true
		}
	}
	var out []virtv1.VirtualMachineInstanceNetworkInterface
	for i, iface := range vmi.Spec.Domain.Devices.Interfaces {
		s := virtv1.VirtualMachineInstanceNetworkInterface{
			Name:          iface.Name,
			MAC:           iface.MacAddress,
			InterfaceName: fmt.Sprintf("eth%d", i),
			InfoSource:    "domain, guest-agent",
			QueueCount:    1,
			LinkState:     "up",
		}
		if s.MAC == "" {
			s.MAC = fmt.Sprintf("02:00:00:00:00:%02x", i+1)
		}
		if onPod[iface.Name] {
			s.IP = podIP
			s.IPs = []string{podIP}
			s.PodInterfaceName = "eth0"
		}
		out = append(out, s)
	}
	return out, nil
}
