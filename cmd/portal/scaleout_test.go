package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/testdb"
)

var (
	kubeOnce sync.Once
	kubeEnv  *kubetest.Env
	kubeErr  error
)

const provisionerUser = "paddock-scaleout-test"

func testCluster(t *testing.T) *kubetest.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-apiserver (run without -short)")
	}
	kubeOnce.Do(func() {
		kubeEnv, kubeErr = kubetest.Start(context.Background())
		if kubeErr == nil {
			kubeErr = kubeEnv.ApplyPaddockRBAC(context.Background(), provisionerUser)
		}
	})
	if kubeErr != nil {
		t.Fatalf("test cluster: %v", kubeErr)
	}
	return kubeEnv
}

var (
	ctrlOnce sync.Once
	ctrlEnv  *kubetest.Env
	ctrlErr  error
)

// controllersCluster starts, once for the package, a second test cluster
// that also runs KubeVirt's own virt-controller, kube-controller-manager and
// the node-level stand-ins (kubetest.Controllers); TestMain stops it.
func controllersCluster(t *testing.T) *kubetest.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-apiserver and KubeVirt's controllers (run without -short)")
	}
	ctrlOnce.Do(func() {
		ctrlEnv, ctrlErr = kubetest.Start(context.Background(), kubetest.Controllers())
		if ctrlErr == nil {
			ctrlErr = ctrlEnv.ApplyPaddockRBAC(context.Background(), provisionerUser)
		}
	})
	if ctrlErr != nil {
		t.Fatalf("test cluster with KubeVirt's controllers: %v", ctrlErr)
	}
	return ctrlEnv
}

// startServe runs `portal serve` against dbURL and the cluster in
// kubeconfig, with env added to its environment, and returns it once it
// listens.
func startServe(t *testing.T, dbURL, kubeconfig string, env ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(portalBin, "serve", "--addr", "127.0.0.1:0")
	p.cmd.Env = append(os.Environ(), append([]string{"DATABASE_URL=" + dbURL, "KUBECONFIG=" + kubeconfig, "PADDOCK_CLUSTER=kubernetes",
		"PADDOCK_JOB_TIMEOUT=3s", "PADDOCK_SECURE_COOKIES=false"}, env...)...)
	// Through an io.Pipe (not StderrPipe) Wait returns only once all of
	// stderr is copied, so the last lines of a killed process are kept.
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		pw.Close()
		<-scanned
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("portal serve log:\n%s", p.log())
		}
	})
	addr := make(chan string, 1)
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = p.Write([]byte(line + "\n"))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-p.done:
		t.Fatalf("portal serve exited:\n%s", p.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("portal serve did not start:\n%s", p.log())
	}
	return p
}

// clusterFixture is one test's share of the test cluster: a namespace that
// is the team payments', a database seeded as `portal dev` seeds it (no
// quotas), the kubeconfig of the RBAC-limited provisioner, an administrator's
// client, and KubeVirt's controllers' stand-in running in the test process.
type clusterFixture struct {
	ns     string
	kcPath string
	dbURL  string
	pool   *pgxpool.Pool
	admin  *provision.Cluster
}

// newClusterFixture makes a namespace on the test cluster, a seeded
// database whose team payments uses it, and KubeVirt's stand-in for it;
// tune, when given, adjusts the stand-in before it starts (a test's
// injected failures).
func newClusterFixture(t *testing.T, prefix string, tune ...func(*provision.Simulator)) *clusterFixture {
	t.Helper()
	return newFixtureOn(t, testCluster(t), prefix, true, tune...)
}

// newControllersFixture is newClusterFixture on the cluster that runs
// KubeVirt's own virt-controller and kube-controller-manager, with kubelet
// and virt-handler stood in for (kubetest.Controllers); no Simulator runs.
func newControllersFixture(t *testing.T, prefix string) *clusterFixture {
	t.Helper()
	return newFixtureOn(t, controllersCluster(t), prefix, false)
}

func newFixtureOn(t *testing.T, env *kubetest.Env, prefix string, simulate bool, tune ...func(*provision.Simulator)) *clusterFixture {
	t.Helper()
	ctx := context.Background()
	ns, err := env.CreateNamespace(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := env.Kubeconfig(provisionerUser)
	if err != nil {
		t.Fatal(err)
	}
	f := &clusterFixture{ns: ns, kcPath: filepath.Join(t.TempDir(), "kubeconfig"), dbURL: testdb.NewURL(t)}
	if err := os.WriteFile(f.kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	f.pool, err = openDB(ctx, f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.pool.Close)
	st := store.New(f.pool)
	if err := seed(ctx, st, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, `UPDATE teams SET namespace = $1 WHERE name = 'payments'`, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, `DELETE FROM team_quotas`); err != nil {
		t.Fatal(err)
	}
	f.admin, err = provision.NewKubernetesCluster(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the portals stop, then the stand-in, then
	// the VMs go, then the pool closes.
	t.Cleanup(func() { f.deleteVMs(t) })
	if !simulate {
		// The API server admits virt-launcher's pod only once the
		// namespace's default ServiceAccount exists; kube-controller-manager
		// makes it.
		deadline := time.Now().Add(time.Minute)
		for {
			_, err := f.admin.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			if err == nil {
				return f
			}
			if time.Now().After(deadline) {
				t.Fatalf("namespace %s has no default ServiceAccount: %v", ns, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// virt-controller's stand-in, as an administrator.
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan struct{})
	t.Cleanup(func() { stopSim(); <-simDone })
	sim := provision.NewSimulator(f.admin, st, slog.New(slog.DiscardHandler), 0)
	sim.Namespace = ns
	for _, fn := range tune {
		fn(sim)
	}
	go func() { sim.Run(simCtx); close(simDone) }()
	return f
}

// deleteVMs removes the namespace's VirtualMachines, their instances and
// disks: the test API server has no garbage collector, and a portal of
// another test that watches every namespace would take them, labelled with
// request ids of another database, for its own.
func (f *clusterFixture) deleteVMs(t *testing.T) {
	ctx := context.Background()
	all, opts := metav1.ListOptions{}, metav1.DeleteOptions{}
	virt := f.admin.Virt.KubevirtV1()
	err := errors.Join(
		virt.VirtualMachines(f.ns).DeleteCollection(ctx, opts, all),
		virt.VirtualMachineInstances(f.ns).DeleteCollection(ctx, opts, all),
		f.admin.CDI.CdiV1beta1().DataVolumes(f.ns).DeleteCollection(ctx, opts, all))
	if err != nil {
		t.Errorf("clean up namespace %s: %v", f.ns, err)
	}
}

// serve starts `portal serve` on the fixture, watching its namespace only
// (other tests' VMs in the shared API server carry request ids too).
func (f *clusterFixture) serve(t *testing.T, env ...string) *proc {
	t.Helper()
	return startServe(t, f.dbURL, f.kcPath, append([]string{"PADDOCK_WATCH_NAMESPACE=" + f.ns}, env...)...)
}

// vmsByRequest counts the VirtualMachines in the namespace by request label.
func (f *clusterFixture) vmsByRequest(t *testing.T) (total int, byRequest map[string]int) {
	t.Helper()
	list, err := f.admin.Virt.KubevirtV1().VirtualMachines(f.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byRequest = map[string]int{}
	for _, vm := range list.Items {
		byRequest[vm.Labels[provision.LabelRequest]]++
	}
	return len(list.Items), byRequest
}

// checkEventsOnce fails the test for every state change recorded more than
// once for a request.
func (f *clusterFixture) checkEventsOnce(t *testing.T) {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT request_id, to_state, count(*) FROM events
		WHERE kind IN ('state', 'vm_created') AND from_state <> to_state GROUP BY 1, 2 HAVING count(*) > 1`)
	if err != nil {
		t.Fatal(err)
	}
	var twice []int64
	for rows.Next() {
		var id int64
		var to string
		var c int
		if err := rows.Scan(&id, &to, &c); err != nil {
			t.Fatal(err)
		}
		t.Errorf("request %d: %d events to %s", id, c, to)
		twice = append(twice, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for _, id := range twice {
		evs, err := f.pool.Query(context.Background(), `SELECT at, kind, from_state, to_state, reason FROM events
			WHERE request_id = $1 ORDER BY at, id`, id)
		if err != nil {
			t.Fatal(err)
		}
		for evs.Next() {
			var at time.Time
			var kind, from, to, reason string
			if err := evs.Scan(&at, &kind, &from, &to, &reason); err != nil {
				t.Fatal(err)
			}
			t.Logf("request %d at %s: %s %s -> %s: %s", id, at.Format("15:04:05.000"), kind, from, to, reason)
		}
		evs.Close()
	}
}

// TestTwoReplicasShareTheWork runs two `portal serve` processes against one
// database and one API server, requests many VMs through both, and kills
// one of them (SIGKILL) midway: every request gets exactly one VM, every
// state change is recorded once, nothing is lost.
func TestTwoReplicasShareTheWork(t *testing.T) {
	twoReplicasShareTheWork(t, newClusterFixture(t, "scaleout"))
}

// TestTwoReplicasShareTheWorkOnRealVirtControllerWithNodeStandIns is
// TestTwoReplicasShareTheWork on the cluster that runs KubeVirt's own
// virt-controller and kube-controller-manager (kubelet and virt-handler
// stood in for, no Simulator).
func TestTwoReplicasShareTheWorkOnRealVirtControllerWithNodeStandIns(t *testing.T) {
	twoReplicasShareTheWork(t, newControllersFixture(t, "scaleout-vc"))
}

func twoReplicasShareTheWork(t *testing.T, f *clusterFixture) {
	a := f.serve(t)
	b := f.serve(t)
	tok := token(t, f.dbURL, "developer")

	const n = 30
	ids := make([]int64, 0, n)
	for i := range n {
		base := a.base
		if i%2 == 1 || i >= n/2 {
			base = b.base
		}
		if i == n/2 {
			_ = a.cmd.Process.Signal(syscall.SIGKILL)
			<-a.done
		}
		r := submit(t, base, tok, fmt.Sprintf("replica-%02d", i))
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		waitState(t, b.base, tok, id, "running", 90*time.Second)
	}
	total, perRequest := f.vmsByRequest(t)
	if total != n || len(perRequest) != n {
		t.Errorf("%d VMs for %d requests (%d distinct)", total, n, len(perRequest))
	}
	f.checkEventsOnce(t)
}
