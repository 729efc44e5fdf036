package provision_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/testdb"
	"paddock/templates"
)

// hookSink is a webhook receiver that checks every signature.
type hookSink struct {
	t      *testing.T
	secret string
	srv    *httptest.Server
	mu     sync.Mutex
	got    []provision.Payload
	// failFirst makes the first n calls answer 503.
	failFirst int
	calls     int
}

func newHookSink(t *testing.T, secret string, failFirst int) *hookSink {
	k := &hookSink{t: t, secret: secret, failFirst: failFirst}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		k.mu.Lock()
		defer k.mu.Unlock()
		k.calls++
		if k.calls <= k.failFirst {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		if !provision.VerifySignature(k.secret, body, r.Header.Get(provision.SignatureHeader)) {
			t.Errorf("bad signature %q", r.Header.Get(provision.SignatureHeader))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p provision.Payload
		if err := json.Unmarshal(body, &p); err != nil || p.Text == "" || r.Header.Get("X-Paddock-Event") != p.Event {
			t.Errorf("payload %s: %v", body, err)
		}
		k.got = append(k.got, p)
	}))
	t.Cleanup(k.srv.Close)
	return k
}

func (k *hookSink) events() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, p := range k.got {
		out = append(out, p.Event)
	}
	return out
}

// newGuardHarness is the simulated harness with the lease keeper (on a
// clock the test moves) and webhooks to urls.
func newGuardHarness(t *testing.T, clock *atomic.Pointer[time.Time], urls []string, secret string) (*harness, *river.Client[pgx.Tx]) {
	t.Helper()
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool := testdb.New(t)
	st := store.New(pool)
	st.EnableWebhooks()
	log := slog.New(slog.DiscardHandler)
	cluster, sim, err := provision.NewSimulatedCluster(ctx, st, log, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	go sim.Run(ctx)
	watcher := provision.NewWatcher(st, cluster, log)
	go func() { _ = watcher.Run(ctx, 2) }()
	workers := river.NewWorkers()
	(&provision.Workers{Store: st, Cluster: cluster, Watcher: watcher, Log: log}).Register(workers)
	(&provision.Leases{Store: st, Grace: 48 * time.Hour, Log: log, Now: func() time.Time { return *clock.Load() }}).Register(workers)
	(&provision.Webhooks{Store: st, URLs: urls, Secret: secret, BaseURL: "https://paddock.example", RetryBase: time.Millisecond, Log: log}).Register(workers)
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
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
	h := &harness{t: t, ctx: ctx, st: st, cluster: cluster}
	if h.team, err = st.EnsureTeam(ctx, "payments", "payments"); err != nil {
		t.Fatal(err)
	}
	if h.dev, err = st.EnsureUser(ctx, "developer", "Dev", store.RoleDeveloper, &h.team.ID); err != nil {
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
	return h, jobs
}

func (h *harness) eventKinds(id int64, prefix string) []string {
	var ks []string
	for _, e := range h.events(id) {
		if strings.HasPrefix(e.Kind, prefix) {
			ks = append(ks, e.Kind)
		}
	}
	return ks
}

func (h *harness) waitFor(what string, ok func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s", what)
}

func (h *harness) runStrategy(name string) virtv1.VirtualMachineRunStrategy {
	vm, err := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").Get(h.ctx, name, metav1.GetOptions{})
	if err != nil || vm.Spec.RunStrategy == nil {
		return ""
	}
	return *vm.Spec.RunStrategy
}

// TestLeaseJobsWarnStopExtendAndDelete runs the lease keeper as River jobs
// against the simulated cluster, with an injected clock: reminders, expiry
// (runStrategy Halted), extension bringing the VM back, and deletion after
// the grace period, each an event and a webhook notification.
func TestLeaseJobsWarnStopExtendAndDelete(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	set := func(t time.Time) { clock.Store(&t) }
	set(time.Now())
	sink := newHookSink(t, "s3cret", 0)
	h, jobs := newGuardHarness(t, &clock, []string{sink.srv.URL}, "s3cret")
	sweep := func() {
		t.Helper()
		if _, err := jobs.Insert(h.ctx, store.LeaseSweepJob{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	r := h.submit("ubuntu-2404", "small", "leased")
	r = h.wait(r.ID, store.StateRunning, hasIP)
	h.waitFor("the vm_ready webhook", func() bool { return slices.Contains(sink.events(), store.NotifyVMReady) })

	set(r.ExpiresAt.Add(-71 * time.Hour))
	sweep()
	h.waitFor("the 3-day reminder", func() bool { return len(h.eventKinds(r.ID, "lease_warning")) == 1 })
	set(r.ExpiresAt.Add(-23 * time.Hour))
	sweep()
	h.waitFor("the 1-day reminder", func() bool { return len(h.eventKinds(r.ID, "lease_warning")) == 2 })

	set(r.ExpiresAt.Add(time.Minute))
	sweep()
	h.wait(r.ID, store.StateExpired, nil)
	h.waitFor("runStrategy Halted", func() bool { return h.runStrategy("leased") == virtv1.RunStrategyHalted })
	h.waitFor("the VM to stop", func() bool {
		r, _ := h.st.Request(h.ctx, r.ID)
		return r.VM != nil && r.VM.Status == "Stopped"
	})
	if got, _ := h.st.Request(h.ctx, r.ID); got.State != store.StateExpired {
		t.Fatalf("a stopped expired VM is %s", got.State)
	}

	// The owner extends the lease: the VM comes back.
	if ext, err := h.st.ExtendLease(h.ctx, r.ID, 3, h.dev, *clock.Load()); err != nil || !ext.Extended {
		t.Fatalf("extend: %+v %v", ext, err)
	}
	r = h.wait(r.ID, store.StateRunning, nil)
	if h.runStrategy("leased") != virtv1.RunStrategyAlways {
		t.Errorf("after extension: runStrategy %s", h.runStrategy("leased"))
	}

	// Expire again, then the grace period passes: the VM is deleted.
	set(r.ExpiresAt.Add(time.Minute))
	sweep()
	h.wait(r.ID, store.StateExpired, nil)
	set(r.ExpiresAt.Add(48 * time.Hour))
	sweep()
	h.wait(r.ID, store.StateDeleted, nil)
	if _, err := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").Get(h.ctx, "leased", metav1.GetOptions{}); err == nil {
		t.Error("the VM is still in the cluster")
	}
	got := strings.Join(h.eventKinds(r.ID, "lease"), ",")
	if got != "lease_warning,lease_warning,lease_expired,lease_extended,lease_restored,lease_expired,lease_delete" {
		t.Errorf("lease events: %s", got)
	}
	h.waitFor("the webhooks", func() bool {
		ev := sink.events()
		n := 0
		for _, e := range ev {
			if e == store.NotifyLeaseExpiring || e == store.NotifyVMExpired {
				n++
			}
		}
		return n == 4
	})
}

// TestLeasePeriodicJobRunsOnStart checks the wiring `portal serve` uses: the
// periodic job sweeps as soon as the client starts.
func TestLeasePeriodicJobRunsOnStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	st := store.New(pool)
	team, _ := st.EnsureTeam(ctx, "payments", "payments")
	dev, _ := st.EnsureUser(ctx, "developer", "Dev", store.RoleDeveloper, &team.ID)
	specs, _ := templatefile.Read(templates.FS)
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	insertOnly, _ := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	st.SetJobClient(insertOnly)
	r, err := st.SubmitRequest(ctx, store.NewRequest{TeamID: team.ID, Requester: dev, Template: "cirros", Size: "nano",
		Name: "old", SSHPublicKey: sshKey, LeaseDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	leases := &provision.Leases{Store: st, Now: func() time.Time { return r.ExpiresAt.Add(time.Hour) }}
	workers := river.NewWorkers()
	leases.Register(workers)
	(&provision.Workers{Store: st, Log: slog.New(slog.DiscardHandler)}).Register(workers)
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger: slog.New(slog.DiscardHandler), Workers: workers, PeriodicJobs: leases.PeriodicJobs(time.Hour),
		FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond, Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = jobs.Stop(stopCtx)
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		got, _ := st.Request(ctx, r.ID)
		if got.State == store.StateExpired {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the periodic lease job did not run on start")
}

// TestWebhookDeliveriesSignedRetriedAndRecorded: each endpoint gets each
// notification once, signed; a failing endpoint is retried with backoff and
// shown to the platform team, and marked failed after the last attempt.
func TestWebhookDeliveriesSignedRetriedAndRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	st := store.New(pool)
	st.EnableWebhooks()
	good := newHookSink(t, "s3cret", 0)
	flaky := newHookSink(t, "s3cret", 1)
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(dead.Close)
	secretURL := dead.URL + "/services/T000/B000/very-secret-token"
	hooks := &provision.Webhooks{Store: st, URLs: []string{good.srv.URL, flaky.srv.URL, secretURL}, Secret: "s3cret",
		BaseURL: "https://paddock.example/", RetryBase: time.Millisecond}
	workers := river.NewWorkers()
	hooks.Register(workers)
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger: slog.New(slog.DiscardHandler), Workers: workers, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st.SetJobClient(jobs)

	team, _ := st.EnsureTeam(ctx, "payments", "payments")
	dev, _ := st.EnsureUser(ctx, "developer", "Dev", store.RoleDeveloper, &team.ID)
	specs, _ := templatefile.Read(templates.FS)
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	// centos-stream9 needs approval: an "approval needed" notification.
	r, err := st.SubmitRequest(ctx, store.NewRequest{TeamID: team.ID, Requester: dev, Template: "centos-stream9", Size: "medium",
		Name: "gated", SSHPublicKey: sshKey, LeaseDays: 3})
	if err != nil || r.State != store.StatePendingApproval {
		t.Fatalf("submit: %v %s", err, r.State)
	}
	if err := jobs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = jobs.Stop(stopCtx)
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && (len(good.events()) == 0 || len(flaky.events()) == 0) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := good.events(); len(got) != 1 || got[0] != store.NotifyApprovalNeeded {
		t.Fatalf("good endpoint got %v", got)
	}
	if got := flaky.events(); len(got) != 1 {
		t.Fatalf("flaky endpoint got %v after a retry", got)
	}
	p := good.got[0]
	if p.Request == nil || p.Request.ID != r.ID || p.Request.Team != "payments" || p.Request.URL != "https://paddock.example/requests/"+itoa(r.ID) ||
		!strings.Contains(p.Text, "<https://paddock.example/requests/"+itoa(r.ID)+"|payments/gated>") || !strings.Contains(p.Text, "requires approval") {
		t.Errorf("payload %+v", p)
	}
	// The dead endpoint is listed for the platform team, without its secret URL.
	var ds []store.WebhookDelivery
	for time.Now().Before(deadline) {
		if ds, err = st.WebhookDeliveries(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(ds) != 1 || ds[0].Status != store.DeliveryRetrying || !strings.Contains(ds[0].LastError, "500") ||
		ds[0].Endpoint != provision.Endpoint(secretURL) || strings.Contains(ds[0].Endpoint+ds[0].LastError, "very-secret") {
		t.Fatalf("deliveries = %+v", ds)
	}
	if err := jobs.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The last attempt gives up; endpoints that have it are not called again.
	if err := hooks.Deliver(ctx, ds[0].NotificationID, true); err == nil {
		t.Error("delivery to a dead endpoint succeeded")
	}
	ds, _ = st.WebhookDeliveries(ctx, 10)
	if len(ds) != 1 || ds[0].Status != store.DeliveryFailed || ds[0].Attempts < 2 {
		t.Errorf("after the last attempt: %+v", ds)
	}
	if len(good.events()) != 1 || len(flaky.events()) != 1 {
		t.Errorf("redelivered: %v %v", good.events(), flaky.events())
	}
	// An unreachable endpoint's error does not leak its URL either.
	gone := &provision.Webhooks{Store: st, URLs: []string{"http://127.0.0.1:1/hooks/secret-path"}}
	_ = gone.Deliver(ctx, ds[0].NotificationID, false)
	ds, _ = st.WebhookDeliveries(ctx, 10)
	for _, d := range ds {
		if strings.Contains(d.LastError, "secret-path") {
			t.Errorf("error leaks the URL: %q", d.LastError)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestProvisioningFailedIsNotified: a VM that fails on its way up sends a
// "provisioning failed" webhook with the reason.
func TestProvisioningFailedIsNotified(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	now := time.Now()
	clock.Store(&now)
	sink := newHookSink(t, "k", 0)
	h, _ := newGuardHarness(t, &clock, []string{sink.srv.URL}, "k")
	r := h.submit("broken-demo", "nano", "oops")
	h.wait(r.ID, store.StateFailed, nil)
	h.waitFor("the provisioning_failed webhook", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, p := range sink.got {
			if p.Event == store.NotifyProvisioningFailed && strings.Contains(p.Text, "could not be pulled") && p.Request.Name == "oops" {
				return true
			}
		}
		return false
	})
}
