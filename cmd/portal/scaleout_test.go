package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

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

// startServe runs `portal serve` against dbURL and the cluster in
// kubeconfig, and returns its base URL.
func startServe(t *testing.T, dbURL, kubeconfig string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(portalBin, "serve", "--addr", "127.0.0.1:0")
	p.cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "KUBECONFIG="+kubeconfig, "PADDOCK_CLUSTER=kubernetes",
		"PADDOCK_JOB_TIMEOUT=3s", "PADDOCK_SECURE_COOKIES=false")
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
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
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = p.Write([]byte(line + "\n"))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
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

// TestTwoReplicasShareTheWork runs two `portal serve` processes against one
// database and one API server, requests many VMs through both, and kills
// one of them (SIGKILL) midway: every request gets exactly one VM, every
// state change is recorded once, nothing is lost.
func TestTwoReplicasShareTheWork(t *testing.T) {
	env := testCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, err := env.CreateNamespace(ctx, "scaleout")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := env.Kubeconfig(provisionerUser)
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	dbURL := testdb.NewURL(t)
	pool, err := openDB(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool)
	if err := seed(ctx, st, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE teams SET namespace = $1 WHERE name = 'payments'`, ns); err != nil {
		t.Fatal(err)
	}
	_, _ = pool.Exec(ctx, `DELETE FROM team_quotas`)

	// virt-controller's stand-in, as an administrator.
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	sim := provision.NewSimulator(admin, st, slog.New(slog.DiscardHandler), 0)
	sim.Namespace = ns
	go sim.Run(ctx)

	a := startServe(t, dbURL, kcPath)
	b := startServe(t, dbURL, kcPath)
	tok := token(t, dbURL, "developer")

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
	list, err := admin.Virt.KubevirtV1().VirtualMachines(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	perRequest := map[string]int{}
	for _, vm := range list.Items {
		perRequest[vm.Labels[provision.LabelRequest]]++
	}
	if len(list.Items) != n || len(perRequest) != n {
		t.Errorf("%d VMs for %d requests (%d distinct)", len(list.Items), n, len(perRequest))
	}
	rows, err := pool.Query(ctx, `SELECT request_id, to_state, count(*) FROM events
		WHERE kind IN ('state', 'vm_created') AND from_state <> to_state GROUP BY 1, 2 HAVING count(*) > 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var to string
		var c int
		_ = rows.Scan(&id, &to, &c)
		t.Errorf("request %d: %d events to %s", id, c, to)
	}
}
