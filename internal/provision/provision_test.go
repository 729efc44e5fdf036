package provision_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	virtv1 "kubevirt.io/api/core/v1"
	virtfake "kubevirt.io/client-go/kubevirt/fake"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/testdb"
	"paddock/templates"
)

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo dev@example"

// harness wires what `portal serve` wires: store, River workers, watcher,
// and a cluster.
type harness struct {
	t       *testing.T
	ctx     context.Context
	st      *store.Store
	cluster *provision.Cluster
	watcher *provision.Watcher
	limit   time.Duration // how long wait waits; 20 s unless set
	team    store.Team
	dev     store.User
	// metrics is where the watcher's and workers' series are registered.
	metrics *prometheus.Registry
	// warnings holds what the watcher and workers logged at Warn and above.
	warnings *warnings
}

// newSimHarness runs the provisioner against the simulated cluster.
func newSimHarness(t *testing.T) *harness {
	t.Helper()
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool := testdb.New(t)
	st := store.New(pool)
	log := slog.New(slog.DiscardHandler)
	cluster, sim, err := provision.NewSimulatedCluster(ctx, st, log, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	go sim.Run(ctx)
	return startHarness(t, ctx, st, cluster)
}

func startHarness(t *testing.T, ctx context.Context, st *store.Store, cluster *provision.Cluster) *harness {
	return startHarnessIn(t, ctx, st, cluster, "payments")
}

// startHarnessIn runs workers and a watcher scoped to namespace ns, the
// namespace of the team "payments".
func startHarnessIn(t *testing.T, ctx context.Context, st *store.Store, cluster *provision.Cluster, ns string) *harness {
	return startHarnessWatching(t, ctx, st, cluster, ns, ns)
}

// startHarnessWatching is startHarnessIn with the watcher scoped to
// watchNS instead ("" for every namespace).
func startHarnessWatching(t *testing.T, ctx context.Context, st *store.Store, cluster *provision.Cluster, ns, watchNS string) *harness {
	t.Helper()
	return startHarnessConfigured(t, ctx, st, cluster, ns, watchNS, nil)
}

// startHarnessConfigured is startHarnessWatching with configure, when set,
// called on the watcher before it runs.
func startHarnessConfigured(t *testing.T, ctx context.Context, st *store.Store, cluster *provision.Cluster, ns, watchNS string,
	configure func(*provision.Watcher)) *harness {
	t.Helper()
	warned := &warnings{}
	var handler slog.Handler = warned
	if os.Getenv("PADDOCK_TEST_LOG") != "" {
		handler = slog.NewMultiHandler(warned, slog.NewTextHandler(os.Stderr, nil))
	}
	log := slog.New(handler)
	watcher := provision.NewNamespacedWatcher(st, cluster, log, watchNS)
	reg := prometheus.NewRegistry()
	metrics := provision.NewMetrics(reg, watcher)
	watcher.Metrics = metrics
	if configure != nil {
		configure(watcher)
	}
	go func() { _ = watcher.Run(ctx, 2) }()
	workers := river.NewWorkers()
	(&provision.Workers{Store: st, Cluster: cluster, Watcher: watcher, Log: log, Metrics: metrics}).Register(workers)
	jobs, err := river.NewClient(riverpgxv5.New(st.Pool()), &river.Config{
		Logger: log, Workers: workers, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 5}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st.SetJobClient(jobs)
	if err := jobs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = jobs.Stop(stopCtx)
	})
	h := &harness{t: t, ctx: ctx, st: st, cluster: cluster, watcher: watcher, metrics: reg, warnings: warned}
	h.team, err = st.EnsureTeam(ctx, "payments", ns)
	if err != nil {
		t.Fatal(err)
	}
	h.dev, err = st.EnsureUser(ctx, "developer", "Dev", store.RoleDeveloper, &h.team.ID)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *harness) submit(template, size, name string) store.Request {
	h.t.Helper()
	r, err := h.st.SubmitRequest(h.ctx, store.NewRequest{TeamID: h.team.ID, Requester: h.dev, Template: template,
		Size: size, Name: name, SSHPublicKey: sshKey, LeaseDays: 3})
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) wait(id int64, state store.State, extra func(store.Request) bool) store.Request {
	h.t.Helper()
	limit := h.limit
	if limit == 0 {
		limit = 20 * time.Second
	}
	deadline := time.Now().Add(limit)
	var r store.Request
	var err error
	for time.Now().Before(deadline) {
		r, err = h.st.Request(h.ctx, id)
		if err != nil {
			h.t.Fatal(err)
		}
		if r.State == state && (extra == nil || extra(r)) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	var jobs string
	_ = h.st.Pool().QueryRow(h.ctx, `SELECT coalesce(string_agg(kind || ':' || state || ':' || attempt || ':' || coalesce(errors[array_length(errors,1)]->>'error', ''), '; '), '')
		FROM river_job WHERE args->>'request_id' = $1`, fmt.Sprint(id)).Scan(&jobs)
	h.t.Fatalf("request %d is %s (%s), want %s; jobs: %s", id, r.State, r.StateReason, state, jobs)
	return r
}

func (h *harness) events(id int64) []store.Event {
	h.t.Helper()
	evs, err := h.st.Events(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func hasIP(r store.Request) bool { return r.VM != nil && r.VM.IP != "" }

// warnings is a log handler that keeps the records at Warn and above.
type warnings struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recs = append(w.recs, r.Clone())
	return nil
}

func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

// about returns the records logged since since with attribute key equal to value.
func (w *warnings) about(key, value string, since time.Time) []slog.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []slog.Record
	for _, r := range w.recs {
		if r.Time.Before(since) {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key && a.Value.String() == value {
				out = append(out, r)
				return false
			}
			return true
		})
	}
	return out
}

func TestSimulatedJourneyAndDayTwoActions(t *testing.T) {
	h := newSimHarness(t)
	r := h.submit("ubuntu-2404", "small", "web-1")
	r = h.wait(r.ID, store.StateRunning, hasIP)
	if r.VM.Manifest == "" || r.VM.Status != "Running" {
		t.Errorf("vm = %+v", r.VM)
	}
	act := func(a store.Action, want store.State) {
		t.Helper()
		if err := h.st.RequestAction(h.ctx, r.ID, a, store.UserActor(h.dev)); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		h.wait(r.ID, want, nil)
	}
	act(store.ActionStop, store.StateStopped)
	vm, err := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").Get(h.ctx, "web-1", metav1.GetOptions{})
	if err != nil || *vm.Spec.RunStrategy != virtv1.RunStrategyHalted {
		t.Fatalf("after stop: %v %v", err, vm.Spec.RunStrategy)
	}
	act(store.ActionStart, store.StateRunning)
	act(store.ActionRestart, store.StateRunning)
	act(store.ActionDelete, store.StateDeleted)
	if _, err := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").Get(h.ctx, "web-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("VM still there after delete: %v", err)
	}
	var actions []string
	for _, e := range h.events(r.ID) {
		if e.Kind == "action" {
			actions = append(actions, e.Actor+":"+e.Reason)
		}
	}
	if got := strings.Join(actions, ","); got != "developer:stop requested,developer:start requested,developer:restart requested,developer:delete requested" {
		t.Errorf("action events: %s", got)
	}
}

func TestSimulatedFailureIsExplained(t *testing.T) {
	h := newSimHarness(t)
	r := h.submit("broken-demo", "nano", "oops")
	r = h.wait(r.ID, store.StateFailed, nil)
	if !strings.Contains(r.StateReason, "could not be pulled") || r.VM.Status != "ErrImagePull" {
		t.Errorf("failed with %q, status %q", r.StateReason, r.VM.Status)
	}
	// The simulator writes the VM's conditions as virt-controller does
	// (kubetest's TestVirtControllerReportsImagePullFailuresWithKubeletStandIn),
	// so the VM's message is kubelet's, not the Ready condition's.
	if want := `rpc error: code = NotFound desc = failed to pull and unpack image "quay.io/example/broken-image:latest"`; !strings.HasPrefix(r.VM.Message, want) {
		t.Errorf("VM message %q, want kubelet's, starting %q", r.VM.Message, want)
	}
	evs, err := h.cluster.RecentEvents(h.ctx, "payments", "oops", 10)
	if err != nil || len(evs) == 0 || evs[0].Type != "Warning" {
		t.Errorf("recent events: %v %+v", err, evs)
	}
}

func TestDriftDeletedOutsidePaddock(t *testing.T) {
	h := newSimHarness(t)
	r := h.submit("cirros", "nano", "drifter")
	h.wait(r.ID, store.StateRunning, hasIP)
	if err := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").Delete(h.ctx, "drifter", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.wait(r.ID, store.StateDeleted, nil)
	evs := h.events(r.ID)
	last := evs[len(evs)-1]
	if last.Kind != "drift" || !strings.Contains(last.Reason, "outside Paddock") {
		t.Errorf("last event: %+v", last)
	}
}

func TestNeverTouchesAVMItDidNotCreate(t *testing.T) {
	h := newSimHarness(t)
	foreign := &virtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: "payments", Labels: map[string]string{"owner": "someone"}}}
	if _, err := h.cluster.CreateVM(h.ctx, foreign); err != nil {
		t.Fatal(err)
	}
	r := h.submit("cirros", "nano", "taken")
	r = h.wait(r.ID, store.StateFailed, nil)
	if !strings.Contains(r.StateReason, "was not created by Paddock") {
		t.Errorf("reason: %q", r.StateReason)
	}
	got, err := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").Get(h.ctx, "taken", metav1.GetOptions{})
	if err != nil || got.Labels["owner"] != "someone" || got.Labels[provision.LabelRequest] != "" {
		t.Errorf("foreign VM changed: %v %v", err, got.Labels)
	}
	// Deleting the failed request must not delete the foreign VM either.
	if err := h.st.RequestAction(h.ctx, r.ID, store.ActionDelete, store.UserActor(h.dev)); err != nil {
		t.Fatal(err)
	}
	h.wait(r.ID, store.StateDeleted, nil)
	if _, err := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").Get(h.ctx, "taken", metav1.GetOptions{}); err != nil {
		t.Errorf("foreign VM deleted: %v", err)
	}
}

func TestMissingNamespaceIsAClearFailure(t *testing.T) {
	h := newSimHarness(t)
	h.cluster.CreateNamespaces = false
	r := h.submit("cirros", "nano", "nowhere")
	r = h.wait(r.ID, store.StateFailed, nil)
	if !strings.Contains(r.StateReason, `namespace "payments" does not exist`) {
		t.Errorf("reason: %q", r.StateReason)
	}
}

func TestRetriedCreateFindsItsOwnVM(t *testing.T) {
	h := newSimHarness(t)
	specs, _ := templatefile.Read(templates.FS)
	r := h.submit("ubuntu-2404", "small", "twice")
	r = h.wait(r.ID, store.StateRunning, hasIP)
	vm, err := provision.Render(specs[len(specs)-1], r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.cluster.CreateVM(h.ctx, vm)
	if err != nil || got.Name != "twice" {
		t.Fatalf("second create: %v", err)
	}
	// Same name, another request: refused.
	vm.Labels[provision.LabelRequest] = fmt.Sprint(r.ID + 1000)
	if _, err := h.cluster.CreateVM(h.ctx, vm); !errors.Is(err, provision.ErrNotOurs) {
		t.Errorf("create for another request: %v", err)
	}
	list, _ := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").List(h.ctx, metav1.ListOptions{})
	if len(list.Items) != 1 {
		t.Errorf("%d VMs", len(list.Items))
	}
}

func TestSimulatedClusterSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	st := store.New(pool)
	log := slog.New(slog.DiscardHandler)
	run1, cancel1 := context.WithCancel(ctx)
	cluster, sim, err := provision.NewSimulatedCluster(run1, st, log, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		sim.Run(run1)
	}()
	h := startHarness(t, run1, st, cluster)
	r := h.submit("fedora", "small", "keeper")
	h.wait(r.ID, store.StateRunning, hasIP)
	cancel1()
	select {
	case <-simDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the first simulator did not stop")
	}

	cluster2, vm, err := restartSimulated(t, ctx, st, "keeper")
	if err != nil || vm.Status.PrintableStatus != virtv1.VirtualMachineStatusRunning {
		t.Fatalf("after restart: %v %+v", err, vm)
	}
	if _, err := cluster2.Virt.KubevirtV1().VirtualMachineInstances("payments").Get(ctx, "keeper", metav1.GetOptions{}); err != nil {
		t.Errorf("VMI lost: %v", err)
	}
	if _, err := cluster2.CDI.CdiV1beta1().DataVolumes("payments").Get(ctx, provision.DataVolumeName("keeper"), metav1.GetOptions{}); err != nil {
		t.Errorf("DataVolume lost: %v", err)
	}
}

// TestSimulatedClusterKeepsAStepStoppedDuringIt stops the simulator (portal
// dev ended) right as its write of a VM's Running status reaches the
// simulated cluster, before the simulator records it in the store: the
// watcher may already have seen that write, so the restarted cluster must
// have it too.
func TestSimulatedClusterKeepsAStepStoppedDuringIt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st := store.New(testdb.New(t))
	log := slog.New(slog.DiscardHandler)
	run1, stop := context.WithCancel(ctx)
	defer stop()
	cluster, sim, err := provision.NewSimulatedCluster(run1, st, log, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	cluster.Virt.(*virtfake.Clientset).PrependReactor("update", "virtualmachines", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if vm, ok := a.(k8stesting.UpdateAction).GetObject().(*virtv1.VirtualMachine); ok && a.GetSubresource() == "status" &&
			vm.Status.PrintableStatus == virtv1.VirtualMachineStatusRunning {
			stop()
		}
		return false, nil, nil // the fake's own reactor writes it
	})
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		sim.Run(run1)
	}()
	h := startHarness(t, ctx, st, cluster)
	h.submit("fedora", "small", "keeper")
	select {
	case <-simDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the simulator did not write the VM's Running status and stop")
	}

	cluster2, vm, err := restartSimulated(t, ctx, st, "keeper")
	if err != nil {
		t.Fatal(err)
	}
	if vm.Status.PrintableStatus != virtv1.VirtualMachineStatusRunning {
		t.Errorf("restarted cluster: VM is %s, want Running (the step the first cluster took)", vm.Status.PrintableStatus)
	}
	vmi, err := cluster2.Virt.KubevirtV1().VirtualMachineInstances("payments").Get(ctx, "keeper", metav1.GetOptions{})
	if err != nil || vmi.Status.Phase != virtv1.Running {
		t.Errorf("restarted cluster: VMI %v %v, want running", err, vmi)
	}
}

// restartSimulated is the simulated cluster as a restarted portal dev finds
// it in st, and the VM name in its namespace payments (with the error of
// reading it).
func restartSimulated(t *testing.T, ctx context.Context, st *store.Store, name string) (*provision.Cluster, *virtv1.VirtualMachine, error) {
	t.Helper()
	cluster, _, err := provision.NewSimulatedCluster(ctx, st, slog.New(slog.DiscardHandler), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := cluster.Virt.KubevirtV1().VirtualMachines("payments").Get(ctx, name, metav1.GetOptions{})
	return cluster, vm, err
}
