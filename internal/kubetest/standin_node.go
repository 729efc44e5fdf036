package kubetest

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
// room for anything a test asks for: StandInNodeAllocatable), binds each
// unbound virt-launcher pod that fits on it, reports each bound pod Running
// with its containers started and ready and a pod IP (as kubelet does once
// the containers run), and, for a pod being deleted, confirms the deletion
// (grace period 0) as kubelet does once its containers have stopped.
//
// Two failures are played as the real components play them, for the tests
// of what KubeVirt reports then: a pod that requests more CPU or memory
// than the node has left is not bound but marked unschedulable, with the
// scheduler's condition and message; and a pod with an image CannotPull
// refuses is left Pending with that container waiting in ErrImagePull, then
// ImagePullBackOff, with kubelet's messages. It does nothing else: no
// probes, no volumes, no other scheduling rules.
type StandInNode struct {
	// Client talks to the API server (an administrator).
	Client kubernetes.Interface
	// NodeName is the Node to register.
	NodeName string
	// CannotPull, when set, plays the container runtime's image pulls: it
	// returns the error the runtime gives for an image that cannot be
	// pulled, and nil for one that can. Unset, every image can be pulled.
	CannotPull func(image string) error
	// PullBackOffAfter is how long after a failed pull kubelet's next sync
	// of the pod reports the back-off (ImagePullBackOff) instead of the
	// failure (ErrImagePull); 5 seconds if zero.
	PullBackOffAfter time.Duration

	cancel context.CancelFunc
	done   chan struct{}
	pods   func() ([]*corev1.Pod, error) // the launcher pods, from the informer's cache
	queue  workqueue.TypedRateLimitingInterface[string]

	mu         sync.Mutex
	nextIP     netip.Addr
	ips        map[string]string    // pod UID -> IP
	pullFailed map[string]time.Time // pod UID -> when an image of it first failed to pull
}

// StandInNodeAllocatable is what the stand-in node offers pods: room for
// anything a test runs, so that a pod is unschedulable only when a test
// asks for more on purpose.
func StandInNodeAllocatable() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
}

// UnresolvableRegistry is a registry host no name server knows (the
// .invalid top-level domain is reserved for that): a node with the
// Controllers option's stand-ins cannot pull an image from it, as a real
// node cannot.
const UnresolvableRegistry = "registry.invalid"

// standInRegistries are the registries as the Controllers option's stand-in
// node sees them: every image is there except those standInPull refuses
// and those a test has said are not pushed yet (Env.ImageNotPushed).
type standInRegistries struct {
	mu       sync.Mutex
	unpushed map[string]bool // references, with kubelet's default tag
}

// pull is the node's pull: standInPull, and an image not pushed yet fails
// as containerd fails an image its registry answers it does not have.
func (r *standInRegistries) pull(image string) error {
	if err := standInPull(image); err != nil {
		return err
	}
	ref := withDefaultTag(image)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unpushed[ref] {
		return notFound(ref)
	}
	return nil
}

// ImageNotPushed makes the Controllers option's stand-in node fail to pull
// image, as its registry answered it does not have it (a template
// published before its image was pushed), until ImagePushed.
func (e *Env) ImageNotPushed(image string) {
	e.registries.mu.Lock()
	defer e.registries.mu.Unlock()
	if e.registries.unpushed == nil {
		e.registries.unpushed = map[string]bool{}
	}
	e.registries.unpushed[withDefaultTag(image)] = true
}

// ImagePushed undoes ImageNotPushed: pulls of image succeed from now on.
// Kubelet's periodic retry of a pod already backing off is not played:
// such a pod pulls again only when it next changes.
func (e *Env) ImagePushed(image string) {
	e.registries.mu.Lock()
	defer e.registries.mu.Unlock()
	delete(e.registries.unpushed, withDefaultTag(image))
}

// notFound is containerd's error, as kubelet reports it, for an image
// reference its registry answers it does not have.
func notFound(ref string) error {
	return fmt.Errorf("rpc error: code = NotFound desc = failed to pull and unpack image %q: failed to resolve reference %q: %s: not found", ref, ref, ref)
}

// standInPull is the container runtime's pull as the Controllers option's
// stand-in node plays it: an image from UnresolvableRegistry fails as
// containerd fails it when the registry's name does not resolve; an image
// whose repository name has "broken" in it (the failure demo template's
// quay.io/example/broken-image, as the Simulator has it) fails as
// containerd fails an image its registry answers it does not have; any
// other image "pulls".
func standInPull(image string) error {
	ref := withDefaultTag(image)
	host, path, ok := strings.Cut(image, "/")
	name, tag := path, "latest"
	if i := strings.LastIndex(path, ":"); i >= 0 {
		name, tag = path[:i], path[i+1:]
	}
	switch {
	case ok && host == UnresolvableRegistry:
		return fmt.Errorf("rpc error: code = Unknown desc = failed to pull and unpack image %q: failed to resolve reference %q: "+
			"failed to do request: Head \"https://%s/v2/%s/manifests/%s\": dial tcp: lookup %s: no such host", ref, ref, host, name, tag, host)
	case strings.Contains(name, "broken"):
		return notFound(ref)
	}
	return nil
}

// withDefaultTag is kubelet's applyDefaultImageTag: an image named without
// a tag or digest is pulled as :latest, and kubelet's messages name it so.
func withDefaultTag(image string) string {
	if strings.Contains(image, "@") || strings.LastIndex(image, ":") > strings.LastIndex(image, "/") {
		return image
	}
	return image + ":latest"
}

// Start registers the Node and starts handling virt-launcher pods until Stop.
func (n *StandInNode) Start(ctx context.Context) error {
	if err := n.registerNode(ctx); err != nil {
		return err
	}
	n.nextIP = netip.MustParseAddr("10.244.0.10")
	n.ips = map[string]string{}
	n.pullFailed = map[string]time.Time{}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	factory := informers.NewSharedInformerFactoryWithOptions(n.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = launcherSelector }))
	pods := factory.Core().V1().Pods()
	n.pods = func() ([]*corev1.Pod, error) { return pods.Lister().List(labels.Everything()) }
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	n.queue = queue
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
	room := StandInNodeAllocatable()
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
		n.mu.Lock()
		delete(n.pullFailed, string(pod.UID))
		n.mu.Unlock()
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
		insufficient, err := n.insufficient(pod)
		if err != nil {
			return err
		}
		if len(insufficient) > 0 {
			return n.markUnschedulable(ctx, pod, insufficient)
		}
		err = n.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
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
	if handled, err := n.failPull(ctx, pod); handled || err != nil {
		return err
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

// insufficient is the scheduler's NodeResourcesFit filter on the one node:
// the resources (CPU, memory) of which pod requests more than the node's
// allocatable less what the pods bound to it request, each as the filter
// words it ("Insufficient memory").
func (n *StandInNode) insufficient(pod *corev1.Pod) ([]string, error) {
	bound, err := n.pods()
	if err != nil {
		return nil, err
	}
	free := StandInNodeAllocatable()
	for _, p := range bound {
		if p.Spec.NodeName != n.NodeName || p.UID == pod.UID || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for r, q := range podRequests(p) {
			if f, ok := free[r]; ok {
				f.Sub(q)
				free[r] = f
			}
		}
	}
	var out []string
	want := podRequests(pod)
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		q, ok := want[r]
		if ok && !q.IsZero() && q.Cmp(free[r]) > 0 {
			out = append(out, "Insufficient "+string(r))
		}
	}
	return out, nil
}

// podRequests is what the scheduler counts a pod as requesting: its
// containers' requests together, or the largest of an init container's if
// more (init containers run one at a time, before the others), plus the
// pod's overhead.
func podRequests(pod *corev1.Pod) corev1.ResourceList {
	out := corev1.ResourceList{}
	add := func(rl corev1.ResourceList) {
		for r, q := range rl {
			if sum, ok := out[r]; ok {
				sum.Add(q)
				out[r] = sum
			} else {
				out[r] = q.DeepCopy()
			}
		}
	}
	for _, c := range pod.Spec.Containers {
		add(c.Resources.Requests)
	}
	for _, c := range pod.Spec.InitContainers {
		for r, q := range c.Resources.Requests {
			if cur, ok := out[r]; !ok || q.Cmp(cur) > 0 {
				out[r] = q.DeepCopy()
			}
		}
	}
	add(pod.Spec.Overhead)
	return out
}

// markUnschedulable does what the scheduler does with a pod no node fits:
// it leaves the pod unbound and sets its PodScheduled condition False,
// reason Unschedulable, with the scheduler's message for a cluster of one
// node where preemption cannot help (no pod of lower priority to evict),
// e.g. "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1
// nodes are available: 1 No preemption victims found for incoming pod.".
func (n *StandInNode) markUnschedulable(ctx context.Context, pod *corev1.Pod, insufficient []string) error {
	reasons := make([]string, len(insufficient))
	for i, r := range insufficient {
		reasons[i] = "1 " + r
	}
	sort.Strings(reasons)
	msg := "0/1 nodes are available: " + strings.Join(reasons, ", ") +
		". preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
	cond := corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: msg, LastTransitionTime: metav1.Now(),
	}
	for i, c := range pod.Status.Conditions {
		if c.Type != corev1.PodScheduled {
			continue
		}
		if c.Status == cond.Status && c.Reason == cond.Reason && c.Message == cond.Message {
			return nil // said already
		}
		if c.Status == cond.Status {
			cond.LastTransitionTime = c.LastTransitionTime
		}
		pod.Status.Conditions = append(pod.Status.Conditions[:i], pod.Status.Conditions[i+1:]...)
		break
	}
	pod.Status.Conditions = append(pod.Status.Conditions, cond)
	_, err := n.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // the informer brings it back
	}
	return err
}

// failPull plays kubelet starting a bound pod one of whose images cannot
// be pulled (CannotPull says which), and reports whether one cannot.
// Kubelet runs the init containers one at a time, in order, so the first
// whose image fails stops the pod there: those before it have completed,
// it waits in ErrImagePull, and every later container waits in
// PodInitializing. (With all init containers done, each regular container
// whose image fails waits in ErrImagePull and the others run.) The pod
// stays Pending, not initialized or not ready, as kubelet reports it. On
// its next sync of the pod, PullBackOffAfter later, kubelet reports the
// back-off instead: ImagePullBackOff, its message wrapping the pull's
// error. (Kubelet's later retries, each showing ErrImagePull again for a
// moment, are not played.)
func (n *StandInNode) failPull(ctx context.Context, pod *corev1.Pod) (bool, error) {
	if n.CannotPull == nil {
		return false, nil
	}
	failing := map[string]error{}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if err := n.CannotPull(c.Image); err != nil {
			failing[c.Name] = err
		}
	}
	if len(failing) == 0 {
		return false, nil
	}
	backOffAfter := n.PullBackOffAfter
	if backOffAfter <= 0 {
		backOffAfter = 5 * time.Second
	}
	n.mu.Lock()
	since, ok := n.pullFailed[string(pod.UID)]
	if !ok {
		since = time.Now()
		n.pullFailed[string(pod.UID)] = since
	}
	n.mu.Unlock()
	backingOff := time.Since(since) >= backOffAfter
	if !backingOff {
		key, _ := cache.MetaNamespaceKeyFunc(pod)
		n.queue.AddAfter(key, backOffAfter-time.Since(since))
	}
	waiting := func(c corev1.Container) *corev1.ContainerStateWaiting {
		err := failing[c.Name]
		if err == nil {
			return nil
		}
		if backingOff {
			return &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff",
				Message: fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %v", withDefaultTag(c.Image), err)}
		}
		return &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: err.Error()}
	}

	now := metav1.Now()
	status := pod.Status.DeepCopy()
	status.Phase = corev1.PodPending
	status.HostIP = "192.0.2.10"
	status.HostIPs = []corev1.HostIP{{IP: status.HostIP}}
	// The pod's sandbox, with its network, is up before any image is pulled.
	status.PodIP = n.podIP(string(pod.UID))
	status.PodIPs = []corev1.PodIP{{IP: status.PodIP}}
	if status.StartTime == nil {
		status.StartTime = &now
	}
	var incomplete, unready []string
	stopped := false // at an init container that cannot start
	status.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		s := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		switch w := waiting(c); {
		case stopped:
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
			incomplete = append(incomplete, c.Name)
		case w != nil:
			s.State.Waiting = w
			incomplete = append(incomplete, c.Name)
			stopped = true
		default:
			s.ImageID, s.Ready = c.Image, true
			s.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}
		}
		status.InitContainerStatuses = append(status.InitContainerStatuses, s)
	}
	status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		started := false
		s := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: &started}
		switch w := waiting(c); {
		case stopped:
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
		case w != nil:
			s.State.Waiting = w
		default:
			started = true
			s.ImageID, s.Ready = c.Image, true
			s.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		}
		if !s.Ready {
			unready = append(unready, c.Name)
		}
		status.ContainerStatuses = append(status.ContainerStatuses, s)
	}
	conds := []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady",
			Message: fmt.Sprintf("containers with unready status: %s", unready)},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady",
			Message: fmt.Sprintf("containers with unready status: %s", unready)},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
	}
	if len(incomplete) > 0 {
		conds[1] = corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionFalse, Reason: "ContainersNotInitialized",
			Message: fmt.Sprintf("containers with incomplete status: %s", incomplete)}
	}
	for i := range conds {
		conds[i].LastTransitionTime = now
		for _, old := range pod.Status.Conditions {
			if old.Type == conds[i].Type && old.Status == conds[i].Status {
				conds[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	status.Conditions = conds
	if sameWaiting(pod.Status, *status) && pod.Status.Phase == corev1.PodPending {
		return true, nil // reported already
	}
	pod.Status = *status
	_, err := n.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return true, nil // the informer brings it back
	}
	return true, err
}

// sameWaiting reports whether a and b have their containers in the same
// states, by reason: whether kubelet would have nothing new to report.
func sameWaiting(a, b corev1.PodStatus) bool {
	reasons := func(s corev1.PodStatus) string {
		var out []string
		for _, c := range append(append([]corev1.ContainerStatus{}, s.InitContainerStatuses...), s.ContainerStatuses...) {
			r := "running"
			switch {
			case c.State.Waiting != nil:
				r = c.State.Waiting.Reason
			case c.State.Terminated != nil:
				r = c.State.Terminated.Reason
			}
			out = append(out, c.Name+"="+r)
		}
		return strings.Join(out, ",")
	}
	return reasons(a) == reasons(b)
}
