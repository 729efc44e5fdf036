package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

// The portal's documented defaults for its Kubernetes client (README,
// PADDOCK_KUBE_QPS and PADDOCK_KUBE_BURST); the bare loop uses the same.
const (
	portalKubeQPS   = 50
	portalKubeBurst = 100
)

// frontDoorRow is one path of the front-door item: how fast VMs came to
// exist and how long each took.
type frontDoorRow struct {
	path    string
	n, conc int
	elapsed time.Duration
	lat     stats // per VM: from the start of its call until it exists
	answer  stats // front door only: how long the POST took to answer
}

// frontDoor measures what a user's script sees: `portal serve` with its
// default settings (only the database, the cluster and the address are
// set), each client a developer with an API token, and o.frontN POST /api/v1/requests from
// o.frontClients clients, each timed until its VM exists in the API server.
// In the same run, a bare client-go loop creates as many VMs, rendered the
// same way, with the same number of goroutines and the portal's default QPS
// and burst, as the RBAC-bound provisioner.
func frontDoor(ctx context.Context, env *kubetest.Env, bin, kubeconfig, dbURL string, o options, rep *report, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pool, err := freshDB(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	ns, err := env.CreateNamespace(ctx, "bench-front")
	if err != nil {
		return err
	}
	loopNS, err := env.CreateNamespace(ctx, "bench-loop")
	if err != nil {
		return err
	}
	// Leave no Paddock VMs behind for the items after this one (run after
	// the portal has stopped: deferred first).
	defer func() {
		for _, n := range []string{ns, loopNS} {
			rep.failed("front door: deleting its VMs", deleteVMsAndVMIs(ctx, env, n), log)
		}
	}()
	team, err := st.EnsureTeam(ctx, "front", ns)
	if err != nil {
		return err
	}
	// Each client is a developer with a token of their own, as 20 people's
	// scripts would be (the API allows each user DefaultAPIRate a minute).
	var dev store.User
	tokens := make([]string, o.frontClients)
	for i := range tokens {
		if dev, err = st.EnsureUser(ctx, fmt.Sprintf("scripter-%d", i), "Script", store.RoleDeveloper, &team.ID); err != nil {
			return err
		}
		if tokens[i], err = st.CreateToken(ctx, dev.ID, "bench", nil); err != nil {
			return err
		}
	}
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		return err
	}
	var spec store.TemplateSpec
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(ctx, s, nil); err != nil {
			return err
		}
		if s.Name == benchTmpl {
			spec = s
		}
	}
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		return err
	}
	seen, err := watchVMs(ctx, admin, ns)
	if err != nil {
		return err
	}

	// The bare loop first, while no portal runs.
	cfg, err := env.ConfigFor(provisionerUser)
	if err != nil {
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = portalKubeQPS, portalKubeBurst
	loopCluster, err := provision.NewKubernetesCluster(cfg)
	if err != nil {
		return err
	}
	quietLoop, quietBeforeLoop, err := waitQuiet(ctx, 5*time.Minute)
	if err != nil {
		return err
	}
	log.Info("front door: bare client-go create loop", "vms", o.frontN, "goroutines", o.frontClients, "load", loadavg(),
		"waited_for_quiet", quietLoop.Round(time.Second), "quiet", quietBeforeLoop)
	var seq atomic.Int64
	loopCPU0, err := readRunCPU(0)
	if err != nil {
		return err
	}
	loop, err := timedRun(o.frontN, o.frontClients, func(i int) (time.Duration, time.Duration, error) {
		vm, err := provision.Render(spec, store.Request{ID: 800_000_000 + seq.Add(1), TeamName: team.Name, Namespace: loopNS,
			RequesterLogin: dev.Login, TemplateName: benchTmpl, TemplateVersion: 1, Size: benchSize,
			Name: fmt.Sprintf("loop-%d", i), SSHPublicKey: sshKey})
		if err != nil {
			return 0, 0, err
		}
		delete(vm.Labels, provision.LabelManagedBy)
		start := time.Now()
		_, err = loopCluster.Virt.KubevirtV1().VirtualMachines(loopNS).Create(ctx, vm, metav1.CreateOptions{})
		return time.Since(start), 0, err
	})
	if err != nil {
		return fmt.Errorf("bare loop: %w", err)
	}
	loopCPU1, err := readRunCPU(0)
	if err != nil {
		return err
	}
	loopCPU := loopCPU1.since(loopCPU0)
	loop.path = fmt.Sprintf("bare client-go create loop (QPS %d, burst %d)", portalKubeQPS, portalKubeBurst)

	// Then the portal, through its API.
	addr, err := freePort()
	if err != nil {
		return err
	}
	logPath := filepath.Join(filepath.Dir(bin), "portal-front.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "PADDOCK_CLUSTER=kubernetes", "KUBECONFIG="+kubeconfig,
		"PADDOCK_ADDR="+addr, "PADDOCK_LOG_FORMAT=text", "PADDOCK_DEV_SIGNIN=")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	if err := waitReady(ctx, "http://"+addr, logPath, cmd); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Minute}
	post := func(i int, name string) (int64, error) {
		body, _ := json.Marshal(map[string]any{"template": benchTmpl, "size": benchSize, "name": name,
			"sshPublicKey": sshKey, "leaseDays": 3})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/requests", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var out struct {
			ID    int64  `json:"id"`
			State string `json:"state"`
			Error string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return 0, fmt.Errorf("POST /api/v1/requests: %s: %w", resp.Status, err)
		}
		if resp.StatusCode != http.StatusCreated {
			return 0, fmt.Errorf("POST /api/v1/requests: %s: %s", resp.Status, out.Error)
		}
		if out.State != string(store.StateApproved) && out.State != string(store.StateProvisioning) {
			return 0, fmt.Errorf("request %d is %s, not auto-approved", out.ID, out.State)
		}
		return out.ID, nil
	}
	// A few requests warm the portal's connections; they are not counted.
	for i := range warmupRounds {
		id, err := post(i, fmt.Sprintf("warm-%d", i))
		if err != nil {
			return fmt.Errorf("front door: %w", err)
		}
		wctx, c := context.WithTimeout(ctx, time.Minute)
		_, err = seen.wait(wctx, id)
		c()
		if err != nil {
			return err
		}
	}
	quietFront, quietBeforeFront, err := waitQuiet(ctx, 5*time.Minute)
	if err != nil {
		return err
	}
	log.Info("front door: POST /api/v1/requests until each VM exists", "requests", o.frontN, "clients", o.frontClients, "load", loadavg(),
		"waited_for_quiet", quietFront.Round(time.Second), "quiet", quietBeforeFront)
	frontCPU0, err := readRunCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	front, err := timedRun(o.frontN, o.frontClients, func(i int) (time.Duration, time.Duration, error) {
		start := time.Now()
		id, err := post(i, fmt.Sprintf("api-%d", i))
		if err != nil {
			return 0, 0, err
		}
		answered := time.Since(start)
		wctx, c := context.WithTimeout(ctx, 5*time.Minute)
		defer c()
		at, err := seen.wait(wctx, id)
		if err != nil {
			return 0, 0, err
		}
		return at.Sub(start), answered, nil
	})
	if err != nil {
		return fmt.Errorf("front door: %w\nportal log:\n%s", err, tail(logPath))
	}
	frontCPU1, err := readRunCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	frontCPU := frontCPU1.since(frontCPU0)
	front.path = "`POST /api/v1/requests` to `portal serve` (default settings) until the VM exists"
	rep.front = append(rep.front, loop, front)

	rate := func(r frontDoorRow) float64 { return float64(r.n) / r.elapsed.Seconds() }
	share := rate(front) / rate(loop)
	times := float64(front.lat.p50) / float64(loop.lat.p50)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	rep.notes = append(rep.notes,
		fmt.Sprintf("Front door: VMs came to exist at %.1f%% of the bare loop's rate (goal at least 80%%: %s); submit → VM p50 is %.2f× the bare create's p50 (goal at most 3×: %s).",
			100*share, verdict(share >= 0.8), times, verdict(times <= 3)),
		fmt.Sprintf("Front door, where the time goes: the POST answered (request stored, auto-approved, reconcile job enqueued) in p50 %s / p99 %s; the rest of each submit → VM time, p50 %s, was spent between the stored request and the created VM.",
			ms(front.answer.p50), ms(front.answer.p99), ms(front.lat.p50-front.answer.p50)),
		fmt.Sprintf("Front door: at QPS %d, %d creates in flight wait about %s each in the Kubernetes client's rate limiter once its burst of %d is spent; the bare loop's p50 was %s.",
			portalKubeQPS, o.frontClients, ms(time.Duration(float64(o.frontClients)/portalKubeQPS*float64(time.Second))), portalKubeBurst, ms(loop.lat.p50)),
		fmt.Sprintf("Front door, CPU: before each of the two runs the program waited until the machine's CPUs had been under %.0f%% busy for 3 s in a row, at most 5 min: %s before the bare loop (%s), %s before the front door (%s).",
			100*quietShare, quietLoop.Round(time.Second), quietWord(quietBeforeLoop), quietFront.Round(time.Second), quietWord(quietBeforeFront)),
		fmt.Sprintf("Front door, CPU: the machine's CPUs were %.0f%% busy during the bare loop and %.0f%% during the front door. "+
			"CPU per VM, bare loop: %s (API server, etcd and KubeVirt's webhooks %s, PostgreSQL %s, load generator %s); "+
			"front door: %s (API server, etcd and webhooks %s, portal %s, PostgreSQL %s, load generator %s).",
			100*loopCPU.busyShare(), 100*frontCPU.busyShare(),
			perVM(loopCPU.cluster+loopCPU.postgres+loopCPU.generator, loop.n), perVM(loopCPU.cluster, loop.n), perVM(loopCPU.postgres, loop.n), perVM(loopCPU.generator, loop.n),
			perVM(frontCPU.cluster+frontCPU.portal+frontCPU.postgres+frontCPU.generator, front.n), perVM(frontCPU.cluster, front.n),
			perVM(frontCPU.portal, front.n), perVM(frontCPU.postgres, front.n), perVM(frontCPU.generator, front.n)))
	return nil
}

// timedRun runs op for i in [0, n) from conc goroutines; op returns the
// sample to record and, optionally, a second one. The elapsed time runs
// from the first start to the last finish.
func timedRun(n, conc int, op func(i int) (time.Duration, time.Duration, error)) (frontDoorRow, error) {
	var (
		mu           sync.Mutex
		lat, answers []time.Duration
		next         atomic.Int64
		wg           sync.WaitGroup
		errOnce      sync.Once
		first        error
	)
	next.Store(-1)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i >= int64(n) {
					return
				}
				d, a, err := op(int(i))
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				mu.Lock()
				lat = append(lat, d)
				if a > 0 {
					answers = append(answers, a)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return frontDoorRow{}, first
	}
	return frontDoorRow{n: n, conc: conc, elapsed: time.Since(start), lat: summarise(lat), answer: summarise(answers)}, nil
}

// quietWord says whether waitQuiet found the machine quiet.
func quietWord(quiet bool) string {
	if quiet {
		return "quiet"
	}
	return "still busy: measured anyway"
}
