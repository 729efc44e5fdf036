package provision

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	virtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/containerizeddataimporter"
	"kubevirt.io/client-go/kubevirt"
)

// Cluster is the Kubernetes cluster Paddock provisions into. The same code
// drives a real cluster (clientsets from a rest.Config) and the simulated one
// (fake clientsets plus a stand-in for KubeVirt's controllers).
type Cluster struct {
	Kube kubernetes.Interface
	Virt kubevirt.Interface
	CDI  containerizeddataimporter.Interface
	// CreateNamespaces makes a team's namespace when it is missing instead of
	// failing the request.
	CreateNamespaces bool
	// Timeout bounds each API call, so a hanging API server delays one job, not all.
	Timeout time.Duration
	// Simulated is set for the simulated cluster, whose fake API has no
	// dry run (it would store the object).
	Simulated bool
	// namespaces remembers namespaces seen to exist, saving an API call per VM.
	namespaces sync.Map
	// rest is the connection to a real cluster, for the console
	// subresources (console.go); nil for the simulated one.
	rest *rest.Config
}

// DefaultKubeQPS and DefaultKubeBurst are the client-side rate limit of
// the Kubernetes clients when the configuration sets none: client-go's own
// defaults (5 requests/s, bursts of 10) would pace VM creation at 5 per second.
const (
	DefaultKubeQPS   = 50
	DefaultKubeBurst = 100
)

// NewKubernetesCluster connects to a real cluster. Every clientset is made
// from cfg, so all share its rate limit (cfg.QPS, cfg.Burst; the defaults
// above when cfg.QPS is 0).
func NewKubernetesCluster(cfg *rest.Config) (*Cluster, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = DefaultKubeQPS, DefaultKubeBurst
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	virt, err := kubevirt.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubevirt client: %w", err)
	}
	cdi, err := containerizeddataimporter.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cdi client: %w", err)
	}
	return &Cluster{Kube: kube, Virt: virt, CDI: cdi, Timeout: 15 * time.Second, rest: cfg}, nil
}

func (c *Cluster) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.Timeout)
}

// ErrNotOurs is returned when an object of the wanted name exists but was not
// made by Paddock for this request; Paddock never touches it.
var ErrNotOurs = errors.New("object exists but belongs to someone else")

// ErrNoNamespace is returned when a team's namespace does not exist.
var ErrNoNamespace = errors.New("namespace does not exist")

// CreateVM creates vm, or finds the VM a previous attempt made for the same
// request (same name and request label), which makes a retried job harmless.
func (c *Cluster) CreateVM(ctx context.Context, vm *virtv1.VirtualMachine) (*virtv1.VirtualMachine, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if err := c.ensureNamespace(ctx, vm.Namespace); err != nil {
		return nil, err
	}
	vms := c.Virt.KubevirtV1().VirtualMachines(vm.Namespace)
	created, err := vms.Create(ctx, vm, metav1.CreateOptions{})
	if err == nil {
		return created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		if apierrors.IsNotFound(err) {
			c.namespaces.Delete(vm.Namespace) // deleted since: look again next time
		}
		return nil, fmt.Errorf("create VirtualMachine %s/%s: %w", vm.Namespace, vm.Name, err)
	}
	existing, err := vms.Get(ctx, vm.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get existing VirtualMachine %s/%s: %w", vm.Namespace, vm.Name, err)
	}
	if existing.Labels[LabelRequest] != vm.Labels[LabelRequest] || existing.Labels[LabelManagedBy] != ManagedByValue {
		return nil, fmt.Errorf("VirtualMachine %s/%s: %w", vm.Namespace, vm.Name, ErrNotOurs)
	}
	return existing, nil
}

// DryRunVM asks the API server to validate vm without creating it.
func (c *Cluster) DryRunVM(ctx context.Context, vm *virtv1.VirtualMachine) error {
	if c.Simulated {
		return nil
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	_, err := c.Virt.KubevirtV1().VirtualMachines(vm.Namespace).Create(ctx, vm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (c *Cluster) ensureNamespace(ctx context.Context, ns string) error {
	if _, ok := c.namespaces.Load(ns); ok {
		return nil
	}
	_, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		c.namespaces.Store(ns, true)
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get namespace %s: %w", ns, err)
	}
	if !c.CreateNamespaces {
		return fmt.Errorf("namespace %q: %w", ns, ErrNoNamespace)
	}
	_, err = c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{LabelManagedBy: ManagedByValue},
	}}, metav1.CreateOptions{})
	if apierrors.IsForbidden(err) {
		// Creating namespaces needs deploy/rbac-create-namespaces.yaml,
		// which is not deployed by default.
		return fmt.Errorf("namespace %q (Paddock may not create it: %v): %w", ns, err, ErrNoNamespace)
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// ours fetches a VM and checks it belongs to the request.
func (c *Cluster) ours(ctx context.Context, ns, name, requestID string) (*virtv1.VirtualMachine, error) {
	vm, err := c.Virt.KubevirtV1().VirtualMachines(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if vm.Labels[LabelRequest] != requestID {
		return nil, fmt.Errorf("VirtualMachine %s/%s: %w", ns, name, ErrNotOurs)
	}
	return vm, nil
}

// setRunStrategy starts (Always) or stops (Halted) a VM.
func (vmKind) setRunStrategy(ctx context.Context, c *Cluster, ns, name, requestID string, rs virtv1.VirtualMachineRunStrategy) error {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := c.ours(ctx, ns, name, requestID); err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"spec":{"runStrategy":%q}}`, rs)
	_, err := c.Virt.KubevirtV1().VirtualMachines(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("set runStrategy %s on %s/%s: %w", rs, ns, name, err)
	}
	return nil
}

// restart deletes the VM's instance; the VM controller starts a fresh one.
func (vmKind) restart(ctx context.Context, c *Cluster, ns, name, requestID string) error {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := c.ours(ctx, ns, name, requestID); err != nil {
		return err
	}
	err := c.Virt.KubevirtV1().VirtualMachineInstances(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete VirtualMachineInstance %s/%s: %w", ns, name, err)
	}
	return nil
}

// remove deletes a VM and the DataVolumes made for its request; a VM that
// never existed counts as removed.
func (vmKind) remove(ctx context.Context, c *Cluster, ns, name, requestID string) error {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	_, err := c.ours(ctx, ns, name, requestID)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	default:
		bg := metav1.DeletePropagationBackground
		err := c.Virt.KubevirtV1().VirtualMachines(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete VirtualMachine %s/%s: %w", ns, name, err)
		}
	}
	return c.deleteDataVolumes(ctx, ns, name, requestID)
}

// deleteDataVolumes deletes the DataVolumes made for a request. They are
// owned by its VM (or pool members), but say so explicitly rather than rely
// on the garbage collector, which may be slow or (in tests) absent.
func (c *Cluster) deleteDataVolumes(ctx context.Context, ns, name, requestID string) error {
	sel := LabelRequest + "=" + requestID
	err := c.CDI.CdiV1beta1().DataVolumes(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete DataVolumes of %s/%s: %w", ns, name, err)
	}
	return nil
}

// RecentEvents returns the latest Kubernetes events about a VM and its
// instance, newest first, for troubleshooting on the request page.
func (c *Cluster) RecentEvents(ctx context.Context, ns, name string, limit int) ([]corev1.Event, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	list, err := c.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return nil, fmt.Errorf("list events of %s/%s: %w", ns, name, err)
	}
	// Filter again: the simulated cluster's fake API ignores field selectors.
	evs := list.Items[:0]
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name {
			evs = append(evs, e)
		}
	}
	sort.Slice(evs, func(i, j int) bool { return eventTime(evs[i]).After(eventTime(evs[j])) })
	if len(evs) > limit {
		evs = evs[:limit]
	}
	return evs, nil
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// Transient reports whether err is worth retrying: the cluster is away,
// slow, or throttling, rather than refusing the object.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) {
		return true
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return false
	}
	// No API status at all: the connection failed.
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connect:") ||
		strings.Contains(msg, "EOF") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "no such host") ||
		strings.Contains(msg, "connection reset")
}
