package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

const (
	sshKey       = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo bench@example"
	benchTmpl    = "fedora"
	benchSize    = "small"
	warmupRounds = 10
)

// rig is what `portal serve` wires for provisioning: store, River client
// with the same fetch settings, workers and a watcher, talking to the API
// server as the RBAC-bound provisioner. The watcher is scoped to the
// benchmark's namespace.
type rig struct {
	st      *store.Store
	pool    *pgxpool.Pool
	cluster *provision.Cluster // the provisioner's identity
	ns      string
	team    store.Team
	dev     store.User
	spec    store.TemplateSpec
	seen    *observer
}

func provisioning(ctx context.Context, env *kubetest.Env, pool *pgxpool.Pool, o options, rep *report, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ns, err := env.CreateNamespace(ctx, "bench")
	if err != nil {
		return err
	}
	cfg, err := env.ConfigFor(provisionerUser)
	if err != nil {
		return err
	}
	cluster, err := provision.NewKubernetesCluster(cfg)
	if err != nil {
		return err
	}
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		return err
	}
	st := store.New(pool)
	quiet := slog.New(slog.DiscardHandler)
	watcher := provision.NewNamespacedWatcher(st, cluster, quiet, ns)
	go func() { _ = watcher.Run(ctx, 4) }()
	workers := river.NewWorkers()
	(&provision.Workers{Store: st, Cluster: cluster, Watcher: watcher, Log: quiet}).Register(workers)
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger: quiet, Workers: workers, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: time.Second,
		JobTimeout: time.Minute,
		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 20}},
	})
	if err != nil {
		return err
	}
	st.SetJobClient(jobs)
	if err := jobs.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, c := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer c()
		_ = jobs.Stop(stopCtx)
	}()

	r := &rig{st: st, pool: pool, cluster: cluster, ns: ns}
	if r.team, err = st.EnsureTeam(ctx, "payments", ns); err != nil {
		return err
	}
	if r.dev, err = st.EnsureUser(ctx, "developer", "Dev", store.RoleDeveloper, &r.team.ID); err != nil {
		return err
	}
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		return err
	}
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(ctx, s, nil); err != nil {
			return err
		}
		if s.Name == benchTmpl {
			r.spec = s
		}
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_insert (id bigserial PRIMARY KEY, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	r.seen, err = watchVMs(ctx, admin, ns)
	if err != nil {
		return err
	}
	for !watcher.Synced() {
		time.Sleep(10 * time.Millisecond)
	}

	if o.only["submit"] {
		var seq atomic.Int64
		for _, c := range []struct{ conc, n int }{{1, o.samples1}, {20, o.samples20}} {
			log.Info("submit latency", "submitters", c.conc, "samples", c.n, "load", loadavg())
			base, err := measure(ctx, c.conc, c.n, func(ctx context.Context) error { return r.bare(ctx, seq.Add(1)) })
			if err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
			pad, err := measure(ctx, c.conc, c.n, func(ctx context.Context) error { return r.submitAndWait(ctx, seq.Add(1)) })
			if err != nil {
				return fmt.Errorf("paddock: %w", err)
			}
			row := latencyRow{concurrency: c.conc, paddock: summarise(pad), base: summarise(base)}
			rep.latency = append(rep.latency, row)
			log.Info("measured", "submitters", c.conc, "p50", row.paddock.p50, "p99", row.paddock.p99,
				"baseline p50", row.base.p50, "baseline p99", row.base.p99)
		}
	}
	if o.only["throughput"] {
		for i, teams := range o.throughputTeams {
			log.Info("sustained submits", "requests", o.throughputN, "teams", teams, "load", loadavg())
			row, err := r.throughput(ctx, o.throughputN, teams, int64(10_000_000*(i+1)))
			if err != nil {
				return err
			}
			log.Info("pgbench", "seconds", o.pgbenchSecs, "load", loadavg())
			tps, err := pgbenchTPS(ctx, o.dbURL, o.pgbenchSecs)
			if err != nil {
				return err
			}
			rep.rate = append(rep.rate, row+fmt.Sprintf(" %.0f |", tps))
			log.Info("measured", "row", rep.rate[len(rep.rate)-1])
		}
	}
	// Leave no Paddock VMs behind for the memory item's baseline.
	return admin.Virt.KubevirtV1().VirtualMachines(ns).DeleteCollection(context.WithoutCancel(ctx), metav1.DeleteOptions{}, metav1.ListOptions{})
}

// measure runs op n times from conc goroutines (after warm-up rounds that
// are not counted) and returns each op's duration.
func measure(ctx context.Context, conc, n int, op func(context.Context) error) ([]time.Duration, error) {
	for range warmupRounds {
		if err := op(ctx); err != nil {
			return nil, err
		}
	}
	var (
		mu      sync.Mutex
		samples = make([]time.Duration, 0, n)
		left    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	left.Store(int64(n))
	for range conc {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				start := time.Now()
				if err := op(ctx); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				d := time.Since(start)
				mu.Lock()
				samples = append(samples, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return samples, first
}

// bare is the baseline: one INSERT transaction, then one create of the VM
// Paddock would render, as the same RBAC-bound user with the same client.
func (r *rig) bare(ctx context.Context, seq int64) error {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO bench_insert (payload) VALUES ($1)`, "request "+strconv.FormatInt(seq, 10)); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	vm, err := provision.Render(r.spec, store.Request{ID: 900_000_000 + seq, TeamName: r.team.Name, Namespace: r.ns,
		RequesterLogin: r.dev.Login, TemplateName: benchTmpl, TemplateVersion: 1, Size: benchSize,
		Name: fmt.Sprintf("base-%d", seq), SSHPublicKey: sshKey})
	if err != nil {
		return err
	}
	// Not a Paddock VM: the watcher must not see it.
	delete(vm.Labels, provision.LabelManagedBy)
	_, err = r.cluster.Virt.KubevirtV1().VirtualMachines(r.ns).Create(ctx, vm, metav1.CreateOptions{})
	return err
}

// submit stores an auto-approved request as the developer.
func (r *rig) submit(ctx context.Context, seq int64) (store.Request, error) {
	return r.submitAs(ctx, r.team.ID, r.dev, seq)
}

func (r *rig) submitAs(ctx context.Context, teamID int64, dev store.User, seq int64) (store.Request, error) {
	req, err := r.st.SubmitRequest(ctx, store.NewRequest{TeamID: teamID, Requester: dev, Template: benchTmpl,
		Size: benchSize, Name: fmt.Sprintf("vm-%d", seq), SSHPublicKey: sshKey, LeaseDays: 3})
	if err != nil {
		return req, err
	}
	if req.State != store.StateApproved && req.State != store.StateProvisioning {
		return req, fmt.Errorf("request %d is %s, not auto-approved", req.ID, req.State)
	}
	return req, nil
}

func (r *rig) submitAndWait(ctx context.Context, seq int64) error {
	req, err := r.submit(ctx, seq)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = r.seen.wait(wctx, req.ID)
	return err
}

// throughput submits n requests from 20 submitters as fast as they go and
// counts until every VM exists; then it checks that each request has
// exactly one VM.
func (r *rig) throughput(ctx context.Context, n, teams int, base int64) (string, error) {
	const submitters = 20
	// Submitter k submits for team k mod teams; the teams share the
	// benchmark's namespace, so the same watcher sees every VM.
	members := []store.User{r.dev}
	teamIDs := []int64{r.team.ID}
	for k := 1; k < teams; k++ {
		t, err := r.st.EnsureTeam(ctx, fmt.Sprintf("team-%d", k), r.ns)
		if err != nil {
			return "", err
		}
		u, err := r.st.EnsureUser(ctx, fmt.Sprintf("developer-%d", k), "Dev", store.RoleDeveloper, &t.ID)
		if err != nil {
			return "", err
		}
		members, teamIDs = append(members, u), append(teamIDs, t.ID)
	}
	peak, stopSampling := sampleConnections(ctx, r.pool)
	ids := make([]int64, n)
	var next atomic.Int64
	next.Store(-1)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var first error
	start := time.Now()
	for k := range submitters {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i >= int64(n) {
					return
				}
				req, err := r.submitAs(ctx, teamIDs[k%teams], members[k%teams], base+i)
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				ids[i] = req.ID
			}
		})
	}
	wg.Wait()
	if first != nil {
		return "", first
	}
	submitted := time.Since(start)
	var last time.Time
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		at, err := r.seen.wait(wctx, id)
		cancel()
		if err != nil {
			continue // counted as missing below
		}
		if at.After(last) {
			last = at
		}
	}
	elapsed := last.Sub(start)
	stopSampling()
	// Count the VMs in the API server per request: exactly one each.
	list, err := r.cluster.Virt.KubevirtV1().VirtualMachines(r.ns).List(ctx, metav1.ListOptions{LabelSelector: provision.LabelManagedBy + "=" + provision.ManagedByValue})
	if err != nil {
		return "", err
	}
	per := map[string]int{}
	for _, vm := range list.Items {
		per[vm.Labels[provision.LabelRequest]]++
	}
	var dup, missing int
	for _, id := range ids {
		switch c := per[strconv.FormatInt(id, 10)]; {
		case c == 0:
			missing++
		case c > 1:
			dup += c - 1
		}
	}
	// A provisioning job that ran twice would show as a second create
	// attempt; River's attempt counter says whether any did.
	var retried int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND attempt > 1`).Scan(&retried); err != nil {
		return "", err
	}
	return fmt.Sprintf("| %d submitters in %d team(s), until the last VM exists (submits alone: %.1f s; jobs retried so far: %d; most database connections in use at once: %d) | %d | %.2f | %.0f | %d | %d |",
		submitters, teams, submitted.Seconds(), retried, peak(), n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), missing, dup), nil
}

// sampleConnections counts, every 20 ms until stop is called, the
// connections to the benchmark's database that are in use (running a
// statement or inside a transaction), and reports the most seen at once.
func sampleConnections(ctx context.Context, pool *pgxpool.Pool) (peak func() int, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var most atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var n int64
			err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()
				  AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')`).Scan(&n)
			if err == nil && n > most.Load() {
				most.Store(n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() int { return int(most.Load()) }, func() { cancel(); <-done }
}

// pgbenchTPS runs pgbench with a one-INSERT transaction script, 20 clients,
// on the benchmark database.
func pgbenchTPS(ctx context.Context, dbURL string, secs int) (float64, error) {
	dir, err := os.MkdirTemp("", "pgbench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "insert.sql")
	if err := os.WriteFile(script, []byte("INSERT INTO bench_insert (payload) VALUES ('pgbench');\n"), 0o644); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "pgbench", "-n", "-c", "20", "-j", "2", "-T", strconv.Itoa(secs), "-f", script, dbURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	m := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no tps:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// observer records when each request's VM first appears in the API server,
// from a watch as the administrator.
type observer struct {
	mu      sync.Mutex
	entries map[int64]*sighting
}

type sighting struct {
	done chan struct{}
	at   time.Time
}

func (o *observer) entry(id int64) *sighting {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.entries[id]
	if e == nil {
		e = &sighting{done: make(chan struct{})}
		o.entries[id] = e
	}
	return e
}

func (o *observer) add(obj any) {
	at := time.Now()
	vm, ok := obj.(*virtv1.VirtualMachine)
	if !ok {
		return
	}
	id, err := strconv.ParseInt(vm.Labels[provision.LabelRequest], 10, 64)
	if err != nil {
		return
	}
	e := o.entry(id)
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-e.done:
	default:
		e.at = at
		close(e.done)
	}
}

func (o *observer) wait(ctx context.Context, id int64) (time.Time, error) {
	e := o.entry(id)
	select {
	case <-e.done:
		return e.at, nil
	case <-ctx.Done():
		return time.Time{}, errors.Join(fmt.Errorf("VM of request %d never appeared", id), ctx.Err())
	}
}

func watchVMs(ctx context.Context, admin *provision.Cluster, ns string) (*observer, error) {
	o := &observer{entries: map[int64]*sighting{}}
	api := admin.Virt.KubevirtV1().VirtualMachines(ns)
	sel := provision.LabelManagedBy + "=" + provision.ManagedByValue
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			lo.LabelSelector = sel
			return api.List(ctx, lo)
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			lo.LabelSelector = sel
			return api.Watch(ctx, lo)
		},
	}, &virtv1.VirtualMachine{}, 0, cache.Indexers{})
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: o.add}); err != nil {
		return nil, err
	}
	go inf.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, errors.New("VM watch did not sync")
	}
	return o, nil
}
