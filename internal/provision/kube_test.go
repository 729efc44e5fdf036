package provision_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/testdb"
	"paddock/templates"
)

// The tests in this file run the provisioner against a real kube-apiserver
// with KubeVirt's CRDs and admission webhooks, as a user bound only to
// deploy/rbac.yaml. A Simulator (running as an administrator) plays
// virt-controller. Each watcher and stand-in is scoped to its test's
// namespace. They run one at a time, in parallel with the tests that need
// no cluster and with TestKubeOutage, which mostly waits.

var (
	kubeOnce sync.Once
	kubeEnv  *kubetest.Env
	kubeErr  error
	kubeMu   sync.Mutex // one real-cluster test at a time
)

const provisionerUser = "paddock-provisioner-test"

func TestMain(m *testing.M) {
	code := m.Run()
	if kubeEnv != nil && wholePackage() {
		for _, env := range []*kubetest.Env{kubeEnv, ctrlEnv} {
			if env != nil {
				if err := keepAudit(env); err != nil {
					fmt.Fprintf(os.Stderr, "--- FAIL: reading a test cluster's audit log: %v\n", err)
					code = 1
				}
			}
		}
		if err := rbacMatchesAudit(kubeEnv.RepoRoot); err != nil {
			fmt.Fprintf(os.Stderr, "--- FAIL: RBAC against the audit logs of the real-cluster tests\n%v\n", err)
			code = 1
		}
	}
	if kubeEnv != nil {
		_ = kubeEnv.Stop()
	}
	if ctrlEnv != nil {
		_ = ctrlEnv.Stop()
	}
	os.Exit(code)
}

// realCluster returns the shared test cluster and holds it for the test,
// which it marks parallel.
func realCluster(t *testing.T) *kubetest.Env {
	t.Helper()
	t.Parallel()
	env := startedCluster(t)
	kubeMu.Lock()
	t.Cleanup(kubeMu.Unlock)
	return env
}

func startedCluster(t *testing.T) *kubetest.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-apiserver (run without -short)")
	}
	kubeOnce.Do(func() {
		ctx := context.Background()
		kubeEnv, kubeErr = kubetest.Start(ctx)
		if kubeErr == nil {
			kubeErr = kubeEnv.ApplyPaddockRBAC(ctx, provisionerUser)
		}
	})
	if kubeErr != nil {
		t.Fatalf("test cluster: %v", kubeErr)
	}
	return kubeEnv
}

// newKubeHarness wires the provisioner to the real API server through cfg
// (the RBAC-bound user unless the test says otherwise), in a fresh namespace
// that is the team's.
func newKubeHarness(t *testing.T, cfg *rest.Config) (*harness, string) {
	t.Helper()
	return newKubeHarnessOn(t, realCluster(t), cfg)
}

// newKubeHarnessOn is newKubeHarness without holding the cluster for the
// test alone: for a test that spends most of its time waiting.
func newKubeHarnessOn(t *testing.T, env *kubetest.Env, cfg *rest.Config) (*harness, string) {
	t.Helper()
	return newKubeHarnessWatching(t, env, cfg, false)
}

// newKubeHarnessWatching is newKubeHarnessOn with the watcher watching
// every namespace when all is set, as in production (tests that share the
// API server keep to their own namespace otherwise).
func newKubeHarnessWatching(t *testing.T, env *kubetest.Env, cfg *rest.Config, all bool) (*harness, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns, err := env.CreateNamespace(ctx, "paddock-test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil {
		cfg, err = env.ConfigFor(provisionerUser)
		if err != nil {
			t.Fatal(err)
		}
	}
	cluster, err := provision.NewKubernetesCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cluster.Timeout = 3 * time.Second
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	pool := testdb.New(t)
	st := store.New(pool)
	sim := provision.NewSimulator(admin, st, slog.New(slog.DiscardHandler), 0)
	sim.Namespace = ns
	go sim.Run(ctx)
	watchNS := ns
	if all {
		watchNS = metav1.NamespaceAll
	}
	h := startHarnessWatching(t, ctx, st, cluster, ns, watchNS)
	return h, ns
}

func TestKubeEveryTemplateAndSizeIsAccepted(t *testing.T) {
	env := realCluster(t)
	ctx := context.Background()
	ns, err := env.CreateNamespace(ctx, "render")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := env.ConfigFor(provisionerUser)
	cluster, err := provision.NewKubernetesCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, spec := range specs {
		for _, size := range spec.Sizes {
			r := store.Request{ID: int64(100 + n), TeamName: "payments", Namespace: ns, RequesterLogin: "dev",
				TemplateName: spec.Name, TemplateVersion: 1, Size: size.Name, Name: fmt.Sprintf("vm-%d", n), SSHPublicKey: sshKey}
			n++
			vm, err := provision.Render(spec, r)
			if err != nil {
				t.Fatal(err)
			}
			if err := cluster.DryRunVM(ctx, vm); err != nil {
				t.Errorf("%s/%s: dry run refused: %v", spec.Name, size.Name, err)
				continue
			}
			created, err := cluster.CreateVM(ctx, vm)
			if err != nil {
				t.Errorf("%s/%s: create refused: %v", spec.Name, size.Name, err)
				continue
			}
			if created.UID == "" || created.Spec.RunStrategy == nil || *created.Spec.RunStrategy != virtv1.RunStrategyAlways {
				t.Errorf("%s/%s: created %+v", spec.Name, size.Name, created.Spec.RunStrategy)
			}
			// A retried job finds the VM it made instead of making another.
			again, err := cluster.CreateVM(ctx, vm)
			if err != nil || again.UID != created.UID {
				t.Errorf("%s/%s: repeated create: %v (uid %s, first %s)", spec.Name, size.Name, err, again.UID, created.UID)
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d template sizes", n)
	}
}

func TestKubeWebhookRefusalsReachTheDeveloper(t *testing.T) {
	env := realCluster(t)
	ctx := context.Background()
	ns, _ := env.CreateNamespace(ctx, "refuse")
	cfg, _ := env.ConfigFor(provisionerUser)
	cluster, _ := provision.NewKubernetesCluster(cfg)
	specs, _ := templatefile.Read(templates.FS)
	vm, _ := provision.Render(specs[0], store.Request{ID: 1, TeamName: "t", Namespace: ns, RequesterLogin: "d",
		Size: specs[0].Sizes[0].Name, Name: "bad", SSHPublicKey: sshKey})
	// A disk without a volume: what Render never makes, KubeVirt refuses.
	vm.Spec.Template.Spec.Volumes = vm.Spec.Template.Spec.Volumes[1:]
	err := cluster.DryRunVM(ctx, vm)
	if err == nil {
		t.Fatal("a disk without a volume was accepted")
	}
	if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err) {
		t.Errorf("unexpected refusal type: %v", err)
	}
}

func TestKubeJourneyAsTheShippedRBAC(t *testing.T) {
	h, ns := newKubeHarness(t, nil)
	r := h.submit("fedora", "small", "web-1")
	r = h.wait(r.ID, store.StateRunning, hasIP)
	if r.VM.Namespace != ns || r.VM.UID == "" {
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
	act(store.ActionStart, store.StateRunning)
	act(store.ActionRestart, store.StateRunning)
	evs, err := h.cluster.RecentEvents(h.ctx, ns, "web-1", 10)
	if err != nil || len(evs) == 0 {
		t.Errorf("recent events as the provisioner: %v (%d)", err, len(evs))
	}
	act(store.ActionDelete, store.StateDeleted)
	if _, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).Get(h.ctx, "web-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("VM after delete: %v", err)
	}
	dvs, err := h.cluster.CDI.CdiV1beta1().DataVolumes(ns).List(h.ctx, metav1.ListOptions{})
	if err != nil || len(dvs.Items) != 0 {
		t.Errorf("DataVolumes after delete: %v %d", err, len(dvs.Items))
	}
}

func TestKubeFailureDriftAndOwnership(t *testing.T) {
	h, ns := newKubeHarness(t, nil)
	broken := h.submit("broken-demo", "nano", "broken")
	drift := h.submit("cirros", "nano", "drifter")
	foreign := &virtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: ns}}
	foreign.Spec.Template = &virtv1.VirtualMachineInstanceTemplateSpec{}
	rs := virtv1.RunStrategyHalted
	foreign.Spec.RunStrategy = &rs
	if _, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).Create(h.ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	taken := h.submit("cirros", "micro", "taken")

	b := h.wait(broken.ID, store.StateFailed, nil)
	if !strings.Contains(b.StateReason, "could not be pulled") {
		t.Errorf("broken: %q", b.StateReason)
	}
	tk := h.wait(taken.ID, store.StateFailed, nil)
	if !strings.Contains(tk.StateReason, "not created by Paddock") {
		t.Errorf("taken: %q", tk.StateReason)
	}
	h.wait(drift.ID, store.StateRunning, hasIP)
	// Stopped behind Paddock's back: recorded as drift, and Paddock does not start it again.
	if _, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).Patch(h.ctx, "drifter", types.MergePatchType,
		[]byte(`{"spec":{"runStrategy":"Halted"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	h.wait(drift.ID, store.StateStopped, nil)
	if evs := h.events(drift.ID); evs[len(evs)-1].Kind != "drift" || !strings.Contains(evs[len(evs)-1].Reason, "stopped outside Paddock") {
		t.Errorf("stop drift event: %+v", evs[len(evs)-1])
	}
	// Started again behind Paddock's back: drift too, and the request wants
	// it running from now on (Paddock does not stop it again).
	if _, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).Patch(h.ctx, "drifter", types.MergePatchType,
		[]byte(`{"spec":{"runStrategy":"Always"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := h.wait(drift.ID, store.StateRunning, nil); r.Desired != store.DesiredRunning {
		t.Errorf("started outside Paddock: desired %s", r.Desired)
	}
	started := false
	for _, e := range h.events(drift.ID) {
		started = started || e.Kind == "drift" && strings.Contains(e.Reason, "started outside Paddock")
	}
	if !started {
		t.Errorf("no start drift event: %+v", h.events(drift.ID))
	}
	if err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).Delete(h.ctx, "drifter", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.wait(drift.ID, store.StateDeleted, nil)
	evs := h.events(drift.ID)
	if last := evs[len(evs)-1]; last.Kind != "drift" {
		t.Errorf("drift event: %+v", last)
	}
}

func TestKubeMissingNamespaceIsExplained(t *testing.T) {
	h, _ := newKubeHarness(t, nil)
	team, err := h.st.EnsureTeam(h.ctx, "ghosts", "no-such-namespace")
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.st.SubmitRequest(h.ctx, store.NewRequest{TeamID: team.ID, Requester: h.dev, Template: "cirros", Size: "nano",
		Name: "lost", SSHPublicKey: sshKey, LeaseDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	r = h.wait(r.ID, store.StateFailed, nil)
	if !strings.Contains(r.StateReason, `"no-such-namespace" does not exist`) {
		t.Errorf("reason: %q", r.StateReason)
	}
}

func TestKubeStuckVMFailsAfterDeadline(t *testing.T) {
	h, _ := newKubeHarness(t, nil)
	h.watcher.StuckAfter = 2 * time.Second
	spec := store.TemplateSpec{Name: "stuck", DisplayName: "Stuck", OSFamily: "cirros", SSHUser: "cirros",
		Image: store.ImageSource{ContainerDisk: "quay.io/example/stuck-import:1"}, Sizes: []store.Size{{Name: "nano", Instancetype: "u1.nano"}},
		MaxLeaseDays: 3, AutoApprove: true}
	if _, _, err := h.st.PublishTemplate(h.ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	r := h.submit("stuck", "nano", "slowpoke")
	r = h.wait(r.ID, store.StateFailed, nil)
	if !strings.Contains(r.StateReason, "did not start within 2s") || !strings.Contains(r.StateReason, "Provisioning") {
		t.Errorf("reason: %q", r.StateReason)
	}
}

// TestKubeOutage cuts the provisioner (its workers and its watcher) off the
// API server for a minute (a proxy in between stops accepting and drops its
// connections) and submits a burst of requests meanwhile: each waits with the
// reason shown, nothing is created; once the API server is back each reaches
// running with exactly one VM and each state change recorded once. Running
// with an IP needs the watcher's informers back (the IP comes from the
// VirtualMachineInstance they cache). Most of its minute is waiting, so it
// runs in parallel with the other tests and without holding the cluster.
func TestKubeOutage(t *testing.T) {
	t.Parallel()
	env := startedCluster(t)
	kubeOutage(t, env, func(cfg *rest.Config) (*harness, string) { return newKubeHarnessOn(t, env, cfg) })
}

// TestKubeOutageOnRealVirtControllerWithNodeStandIns is TestKubeOutage on
// the cluster that runs KubeVirt's own virt-controller (kubelet and
// virt-handler stood in for, no Simulator); only the provisioner is cut
// off, as when the network between Paddock and the cluster fails.
func TestKubeOutageOnRealVirtControllerWithNodeStandIns(t *testing.T) {
	t.Parallel()
	env := controllersCluster(t)
	kubeOutage(t, env, func(cfg *rest.Config) (*harness, string) {
		h, ns, _ := newControllersHarnessWith(t, "outage", cfg)
		return h, ns
	})
}

// kubeOutage runs the outage on env; harness wires the provisioner through
// the given configuration.
func kubeOutage(t *testing.T, env *kubetest.Env, harness func(*rest.Config) (*harness, string)) {
	cfg, err := env.ConfigFor(provisionerUser)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, u.Host)
	cfg = rest.CopyConfig(cfg)
	cfg.Host = "https://" + px.addr
	h, ns := harness(cfg)
	if _, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).List(h.ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	for deadline := time.Now().Add(20 * time.Second); !h.watcher.Synced(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not sync")
		}
	}
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		t.Fatal(err)
	}

	const outage, n = time.Minute, 20
	px.down()
	downAt := time.Now()
	var ids []int64
	for i := range n {
		ids = append(ids, h.submit("cirros", "nano", fmt.Sprintf("burst-%02d", i)).ID)
	}
	waiting := func(r store.Request) bool { return strings.Contains(r.StateReason, "Waiting for the cluster") }
	for _, id := range ids {
		h.wait(id, store.StateApproved, waiting)
	}
	t.Logf("all %d requests show the reason %s into the outage", n, time.Since(downAt).Round(100*time.Millisecond))
	time.Sleep(time.Until(downAt.Add(outage)))
	for _, id := range ids {
		if r, err := h.st.Request(h.ctx, id); err != nil || r.State != store.StateApproved || !waiting(r) {
			t.Errorf("request %d at the end of the outage: %s %q (%v)", id, r.State, r.StateReason, err)
		}
	}
	if list, err := admin.Virt.KubevirtV1().VirtualMachines(ns).List(h.ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Fatalf("%d VMs created while the API server was away (%v)", len(list.Items), err)
	}

	px.up()
	upAt := time.Now()
	// Job retries back off to at most 30 s, the informers' to at most 60 s.
	h.limit = 90 * time.Second
	for _, id := range ids {
		h.wait(id, store.StateRunning, hasIP)
	}
	t.Logf("all %d requests running %s after the API server came back", n, time.Since(upAt).Round(100*time.Millisecond))

	list, err := admin.Virt.KubevirtV1().VirtualMachines(ns).List(h.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	perRequest := map[string]int{}
	for _, vm := range list.Items {
		perRequest[vm.Labels[provision.LabelRequest]]++
	}
	for _, id := range ids {
		if c := perRequest[fmt.Sprint(id)]; c != 1 {
			t.Errorf("request %d: %d VMs", id, c)
		}
	}
	if len(list.Items) != n {
		t.Errorf("%d VMs for %d requests", len(list.Items), n)
	}
	// Each state change once, and the reason for waiting noted once per
	// request however many times its job was retried.
	rows, err := h.st.Pool().Query(h.ctx, `SELECT request_id, kind, to_state, count(*) FROM events
		WHERE (kind IN ('state', 'vm_created') AND from_state <> to_state) OR kind = 'waiting'
		GROUP BY 1, 2, 3 HAVING count(*) > 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kind, to string
		var c int
		if err := rows.Scan(&id, &kind, &to, &c); err != nil {
			t.Fatal(err)
		}
		var history []string
		for _, e := range h.events(id) {
			history = append(history, fmt.Sprintf("%s %s %s→%s %q", e.At.Format("15:04:05.000"), e.Kind, e.FromState, e.ToState, e.Reason))
		}
		t.Errorf("request %d: %d %s events to %s:\n%s", id, c, kind, to, strings.Join(history, "\n"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// proxy is a TCP proxy that can be taken down and brought back on the same address.
type proxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	// The proxy listens again on the same port when it comes back up: a
	// port outside the kernel's ephemeral range is not taken meanwhile by
	// an outgoing connection's source port.
	port, err := kubetest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(ln, c)
		}
	}()
}

// pipe connects c to the target unless ln, which accepted c, was closed
// meanwhile: no connection outlives down.
func (p *proxy) pipe(ln net.Listener, c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln != ln {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(u, c); u.Close() }()
	_, _ = io.Copy(c, u)
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *proxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy back up: %v", err)
	}
	p.serve(ln)
}
