package kubetest

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// StandInNodeName is the node the Controllers option's stand-ins register.
const StandInNodeName = "standin-node-0"

// launcherSelector selects the pods virt-controller creates for instances.
const launcherSelector = "kubevirt.io=virt-launcher"

// StandInNode stands in for what no test machine can run: a node with its
// kubelet, and the scheduler's binding. It registers a Node (Ready, with
// room for anything), binds every unbound virt-launcher pod to it, reports
// each bound pod Running with its containers started and ready and a pod IP
// (as kubelet does once the containers run), and, for a pod being deleted,
// confirms the deletion (grace period 0) as kubelet does once its containers
// have stopped. It does nothing else: no images, no probes, no resources.
type StandInNode struct {
	// Client talks to the API server (an administrator).
	Client kubernetes.Interface
	// NodeName is the Node to register.
	NodeName string

	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	nextIP netip.Addr
	ips    map[string]string // pod UID -> IP
}

// Start registers the Node and starts handling virt-launcher pods until Stop.
func (n *StandInNode) Start(ctx context.Context) error {
	if err := n.registerNode(ctx); err != nil {
		return err
	}
	n.nextIP = netip.MustParseAddr("10.244.0.10")
	n.ips = map[string]string{}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	factory := informers.NewSharedInformerFactoryWithOptions(n.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = launcherSelector }))
	pods := factory.Core().V1().Pods()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		cancel()
		return err
	}
	factory.Start(runCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced) {
		cancel()
		factory.Shutdown()
		return fmt.Errorf("kubetest: node stand-in: pod cache did not sync: %w", ctx.Err())
	}
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		defer factory.Shutdown()
		go func() {
			<-runCtx.Done()
			queue.ShutDown()
		}()
		for {
			key, quit := queue.Get()
			if quit {
				return
			}
			ns, name, _ := cache.SplitMetaNamespaceKey(key)
			pod, err := pods.Lister().Pods(ns).Get(name)
			if err == nil {
				err = n.sync(runCtx, pod.DeepCopy())
			} else if apierrors.IsNotFound(err) {
				err = nil
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

// Stop stops handling pods. The Node stays.
func (n *StandInNode) Stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	<-n.done
}

func (n *StandInNode) registerNode(ctx context.Context) error {
	room := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
	now := metav1.Now()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   n.NodeName,
			Labels: map[string]string{"kubernetes.io/hostname": n.NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
		},
	}
	created, err := n.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = n.Client.CoreV1().Nodes().Get(ctx, n.NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("kubetest: node stand-in: register node: %w", err)
	}
	created.Status = corev1.NodeStatus{
		Capacity:    room,
		Allocatable: room,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}, {Type: corev1.NodeHostName, Address: n.NodeName}},
		NodeInfo:  corev1.NodeSystemInfo{Architecture: "amd64", OperatingSystem: "linux", KubeletVersion: "v1.34.4"},
	}
	if _, err := n.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kubetest: node stand-in: node status: %w", err)
	}
	return nil
}

// sync does, for one pod, the next thing the scheduler or kubelet would.
func (n *StandInNode) sync(ctx context.Context, pod *corev1.Pod) error {
	switch {
	case pod.DeletionTimestamp != nil:
		if pod.Spec.NodeName != "" && pod.Spec.NodeName != n.NodeName {
			return nil
		}
		zero := int64(0)
		err := n.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	case pod.Spec.NodeName == "":
		err := n.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: n.NodeName},
		}, metav1.CreateOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	case pod.Spec.NodeName != n.NodeName:
		return nil
	case pod.Status.Phase == corev1.PodRunning || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return nil
	}
	now := metav1.Now()
	ip := n.podIP(string(pod.UID))
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = "192.0.2.10"
	pod.Status.HostIPs = []corev1.HostIP{{IP: pod.Status.HostIP}}
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	pod.Status.StartTime = &now
	pod.Status.Conditions = nil
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	pod.Status.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		pod.Status.InitContainerStatuses = append(pod.Status.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}},
		})
	}
	pod.Status.ContainerStatuses = nil
	started := true
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, err := n.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Gone, or changed since it was read: the informer brings it back.
		return nil
	}
	return err
}

// podIP gives each pod its own address, kept for the pod's life.
func (n *StandInNode) podIP(uid string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ip, ok := n.ips[uid]; ok {
		return ip
	}
	ip := n.nextIP.String()
	n.nextIP = n.nextIP.Next()
	n.ips[uid] = ip
	return ip
}
