package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo dev@example"

type bundle struct {
	st    *store.Store
	team  store.Team
	dev   store.User
	other store.User
}

// setup returns a store on a private database with a team, a developer, and
// the templates "ubuntu" (auto-approved) and "gated" (needs approval).
func setup(t *testing.T) bundle {
	t.Helper()
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	st := store.New(pool)
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st.SetJobClient(jobs)
	team, err := st.EnsureTeam(ctx, "payments", "payments")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := st.EnsureUser(ctx, "developer", "Dev", store.RoleDeveloper, &team.ID)
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.EnsureUser(ctx, "manager", "Manager", store.RoleManager, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []store.TemplateSpec{testTemplate("ubuntu", true), testTemplate("gated", false)} {
		if _, _, err := st.PublishTemplate(ctx, spec, nil); err != nil {
			t.Fatal(err)
		}
	}
	return bundle{st: st, team: team, dev: dev, other: other}
}

func testTemplate(name string, auto bool) store.TemplateSpec {
	return store.TemplateSpec{
		Name: name, DisplayName: name, OSFamily: "ubuntu", SSHUser: "ubuntu",
		Image:        store.ImageSource{ContainerDisk: "quay.io/containerdisks/ubuntu:24.04"},
		Sizes:        []store.Size{{Name: "small", Instancetype: "u1.small", Preference: "ubuntu"}, {Name: "custom", CPU: 2, MemoryMiB: 4096}},
		MaxLeaseDays: 14, AutoApprove: auto,
		CloudInit: "#cloud-config\npackages: [htop]\n",
	}
}

func (b bundle) submit(t *testing.T, mod func(*store.NewRequest)) (store.Request, error) {
	t.Helper()
	n := store.NewRequest{TeamID: b.team.ID, Requester: b.dev, Template: "ubuntu", Size: "small",
		Name: "web-1", SSHPublicKey: sshKey, LeaseDays: 7, Justification: "testing"}
	if mod != nil {
		mod(&n)
	}
	return b.st.SubmitRequest(context.Background(), n)
}

func countRows(t *testing.T, st *store.Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSubmitAutoApprovedWritesRequestEventsAndJob(t *testing.T) {
	b := setup(t)
	r, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.StateApproved {
		t.Fatalf("state = %s, want approved", r.State)
	}
	if r.VCPU != 1 || r.MemoryMiB != 2048 || r.TemplateVersion != 1 || r.Namespace != "payments" {
		t.Errorf("request = %+v", r)
	}
	evs, err := b.st.Events(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Kind != "submitted" || evs[1].Kind != "decision" || evs[1].ToState != store.StateApproved {
		t.Fatalf("events = %+v", evs)
	}
	if evs[1].Reason != "auto-approved: template allows auto-approval; lease 7 days ≤ maximum 14" {
		t.Errorf("decision reason = %q", evs[1].Reason)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND args->>'request_id' = $1`, strconv.FormatInt(r.ID, 10)); n != 1 {
		t.Errorf("reconcile jobs = %d, want 1", n)
	}
}

func TestSubmitNeedingApprovalEnqueuesNothing(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		name string
		mod  func(*store.NewRequest)
		why  string
	}{
		{"gated template", func(n *store.NewRequest) { n.Template = "gated" }, "needs approval: template gated requires approval"},
		{"long lease", func(n *store.NewRequest) { n.Name = "long"; n.LeaseDays = 30 }, "needs approval: lease 30 days exceeds the template's maximum of 14"},
	} {
		r, err := b.submit(t, tc.mod)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.State != store.StatePendingApproval || r.Decision != tc.why {
			t.Errorf("%s: state %s, decision %q", tc.name, r.State, r.Decision)
		}
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM river_job`); n != 0 {
		t.Errorf("jobs = %d, want 0", n)
	}
}

func TestSubmitInvalidWritesNothing(t *testing.T) {
	b := setup(t)
	cases := []struct {
		field string
		mod   func(*store.NewRequest)
	}{
		{"name", func(n *store.NewRequest) { n.Name = "Web_1" }},
		{"name", func(n *store.NewRequest) { n.Name = "a234567890123456789012345678901234567890123456789012" }},
		{"name", func(n *store.NewRequest) { n.Name = "" }},
		{"template", func(n *store.NewRequest) { n.Template = "nope" }},
		{"size", func(n *store.NewRequest) { n.Size = "huge" }},
		{"sshPublicKey", func(n *store.NewRequest) { n.SSHPublicKey = "ssh-rsa notbase64" }},
		{"sshPublicKey", func(n *store.NewRequest) { n.SSHPublicKey = "-----BEGIN OPENSSH PRIVATE KEY-----" }},
		{"leaseDays", func(n *store.NewRequest) { n.LeaseDays = 0 }},
		{"leaseDays", func(n *store.NewRequest) { n.LeaseDays = 366 }},
	}
	for _, tc := range cases {
		_, err := b.submit(t, tc.mod)
		var v *store.ValidationError
		if !errors.As(err, &v) || v.For(tc.field) == "" {
			t.Errorf("want a %s error, got %v", tc.field, err)
		}
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM requests`) + countRows(t, b.st, `SELECT count(*) FROM events`); n != 0 {
		t.Errorf("rows written: %d", n)
	}
}

func TestSubmitDuplicateNameAndIdempotencyKey(t *testing.T) {
	b := setup(t)
	first, err := b.submit(t, func(n *store.NewRequest) { n.IdempotencyKey = "k1" })
	if err != nil {
		t.Fatal(err)
	}
	// A client retry with the same key, concurrently, gets the same request.
	var wg sync.WaitGroup
	ids := make([]int64, 5)
	for i := range ids {
		wg.Go(func() {
			r, err := b.submit(t, func(n *store.NewRequest) { n.IdempotencyKey = "k1" })
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != first.ID {
			t.Errorf("retry made request %d, want %d", id, first.ID)
		}
	}
	_, err = b.submit(t, nil)
	var v *store.ValidationError
	if !errors.As(err, &v) || v.For("name") == "" {
		t.Fatalf("duplicate name: %v", err)
	}
}

func TestTransitionOnlyFromAllowedStatesAndRecordsOnce(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := b.st.Transition(ctx, r.ID, store.StateRunning, store.ActorCluster, "state", "", store.StateProvisioning)
	if err != nil || changed {
		t.Fatalf("approved→running allowed: %v %v", changed, err)
	}
	for range 2 {
		if _, err := b.st.Transition(ctx, r.ID, store.StateProvisioning, store.ActorProvisioner, "state", "", store.StateApproved); err != nil {
			t.Fatal(err)
		}
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE request_id = $1 AND to_state = 'provisioning'`, r.ID); n != 1 {
		t.Errorf("provisioning events = %d, want 1", n)
	}
	// The event log is append-only.
	if _, err := b.st.Pool().Exec(ctx, `UPDATE events SET reason = 'x'`); err == nil {
		t.Error("events could be updated")
	}
	if _, err := b.st.Pool().Exec(ctx, `DELETE FROM events`); err == nil {
		t.Error("events could be deleted")
	}
}

func TestProvisionRecordsVMAndObserveChangesOnlyOnChange(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = testdb.Provision(ctx, b.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: r.Namespace, Name: r.Name, UID: "u1", Manifest: "kind: VirtualMachine\n"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A second run (a retried job) finds nothing to do.
	calls := 0
	if err := testdb.Provision(ctx, b.st, r.ID, func(r store.Request) (store.VM, error) {
		calls++
		return store.VM{}, nil
	}); err != nil || calls != 0 {
		t.Fatalf("second provision: calls=%d err=%v", calls, err)
	}
	obs := store.Observation{Status: "Running", IP: "10.0.0.7", State: store.StateRunning, Namespace: r.Namespace, Name: r.Name, UID: "u1"}
	for range 3 {
		if _, err := b.st.Observe(ctx, r.ID, obs); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.st.Request(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.StateRunning || got.VM == nil || got.VM.IP != "10.0.0.7" {
		t.Fatalf("after observe: %+v vm=%+v", got, got.VM)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE request_id = $1 AND to_state = 'running'`, r.ID); n != 1 {
		t.Errorf("running events = %d", n)
	}
	// Gone without a delete request is drift.
	if moved, err := b.st.Observe(ctx, r.ID, store.Observation{Gone: true, Namespace: r.Namespace, Name: r.Name, UID: "u1"}); err != nil || moved != store.StateDeleted {
		t.Fatal(moved, err)
	}
	evs, _ := b.st.Events(ctx, r.ID)
	last := evs[len(evs)-1]
	if last.Kind != "drift" || last.ToState != store.StateDeleted {
		t.Errorf("last event %+v", last)
	}
}

func TestProvisionPermanentFailure(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, _ := b.submit(t, nil)
	if err := b.st.FailProvisioning(ctx, r.ID, "name taken"); err != nil {
		t.Fatal(err)
	}
	got, _ := b.st.Request(ctx, r.ID)
	if got.State != store.StateFailed || got.StateReason != "name taken" {
		t.Fatalf("got %s %q", got.State, got.StateReason)
	}
	// Only an approved request fails so: a second call changes nothing.
	if err := b.st.FailProvisioning(ctx, r.ID, "again"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.st.Request(ctx, r.ID); got.StateReason != "name taken" {
		t.Fatalf("failed twice: %q", got.StateReason)
	}
	// A VM recorded for a request that is no longer approved is refused.
	if ok, err := b.st.RecordVM(ctx, r.ID, store.VM{Namespace: r.Namespace, Name: r.Name}); err != nil || ok {
		t.Fatalf("recorded a VM for a failed request: %v %v", ok, err)
	}
}

func TestActions(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	pending, _ := b.submit(t, func(n *store.NewRequest) { n.Template = "gated" })
	actor := store.UserActor(b.dev)
	if err := b.st.RequestAction(ctx, pending.ID, store.ActionStop, actor); !errors.Is(err, store.ErrConflict) {
		t.Errorf("stop pending: %v", err)
	}
	if err := b.st.RequestAction(ctx, pending.ID, store.ActionDelete, actor); err != nil {
		t.Fatal(err)
	}
	got, _ := b.st.Request(ctx, pending.ID)
	if got.State != store.StateDeleted {
		t.Errorf("withdrawn request is %s", got.State)
	}
	// The name is free again.
	if _, err := b.submit(t, func(n *store.NewRequest) { n.Template = "gated" }); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RequestAction(ctx, 999999, store.ActionStop, actor); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing request: %v", err)
	}
}

func TestPublishTemplateVersionsOnlyOnChange(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	spec := testTemplate("ubuntu", true)
	v, changed, err := b.st.PublishTemplate(ctx, spec, nil)
	if err != nil || changed || v != 1 {
		t.Fatalf("republish same: v=%d changed=%v err=%v", v, changed, err)
	}
	spec.Description = "new"
	v, changed, err = b.st.PublishTemplate(ctx, spec, nil)
	if err != nil || !changed || v != 2 {
		t.Fatalf("publish changed: v=%d changed=%v err=%v", v, changed, err)
	}
	// Old versions are immutable.
	if _, err := b.st.Pool().Exec(ctx, `UPDATE template_versions SET spec = '{}'`); err == nil {
		t.Error("template version could be updated")
	}
	tv, err := b.st.TemplateVersion(ctx, 1, 1)
	if err != nil || tv.Spec.Description != "" {
		t.Errorf("v1 = %+v, %v", tv.Spec, err)
	}
	_ = pgx.ErrNoRows
}

func TestTokens(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tok, err := b.st.CreateToken(ctx, b.dev.ID, "cli", nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := b.st.UserByToken(ctx, tok)
	if err != nil || u.Login != "developer" || u.TeamName != "payments" {
		t.Fatalf("user by token: %+v %v", u, err)
	}
	if _, err := b.st.UserByToken(ctx, tok+"x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bad token: %v", err)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM api_tokens WHERE hash = convert_to($1, 'UTF8')`, tok); n != 0 {
		t.Error("token stored in plain text")
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, "SELECT 1")
	if !store.Unavailable(err) {
		t.Errorf("connection refused not unavailable: %v", err)
	}
	if store.Unavailable(store.ErrNotFound) || store.Unavailable(nil) {
		t.Error("ordinary errors counted as unavailable")
	}
}

// TestObserveIgnoresStaleObservations: an observation older (by the API
// server's resourceVersion) than one already recorded changes nothing — a
// lagging replica's cache cannot move a running request back; equal and
// newer ones apply, and unknown versions (0) are not compared.
func TestObserveIgnoresStaleObservations(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := testdb.Provision(ctx, b.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: r.Namespace, Name: r.Name, UID: "u1", Manifest: "kind: VirtualMachine\n"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	observe := func(version int64, state store.State, status string) store.State {
		t.Helper()
		moved, err := b.st.Observe(ctx, r.ID, store.Observation{Status: status, State: state, Version: version,
			Namespace: r.Namespace, Name: r.Name, UID: "u1"})
		if err != nil {
			t.Fatal(err)
		}
		return moved
	}
	if moved := observe(200, store.StateRunning, "Running"); moved != store.StateRunning {
		t.Fatalf("running at 200: moved %q", moved)
	}
	if moved := observe(150, store.StateProvisioning, "Starting"); moved != "" {
		t.Errorf("a stale observation moved the request to %s", moved)
	}
	if got, _ := b.st.Request(ctx, r.ID); got.State != store.StateRunning || got.VM.Status != "Running" {
		t.Errorf("after the stale observation: %s, VM %s", got.State, got.VM.Status)
	}
	if moved := observe(200, store.StateRunning, "Running"); moved != "" {
		t.Errorf("the same observation again moved the request to %s", moved)
	}
	if moved := observe(0, store.StateRunning, "Running"); moved != "" {
		t.Errorf("an observation of unknown version moved the request to %s", moved)
	}
	// A newer version that shows nothing new records the version but leaves
	// the VM's updated_at; a change of status moves it.
	vmRow := func() (version int64, updated time.Time) {
		t.Helper()
		if err := b.st.Pool().QueryRow(ctx, `SELECT observed_version, updated_at FROM vms WHERE request_id = $1`, r.ID).Scan(&version, &updated); err != nil {
			t.Fatal(err)
		}
		return version, updated
	}
	_, before := vmRow()
	if moved := observe(230, store.StateRunning, "Running"); moved != "" {
		t.Errorf("a newer observation of the same status moved the request to %s", moved)
	}
	if version, updated := vmRow(); version != 230 || !updated.Equal(before) {
		t.Errorf("after a newer observation of the same status: version %d (want 230), updated_at %s (want %s, unchanged)", version, updated, before)
	}
	if moved := observe(260, store.StateStopped, "Stopped"); moved != store.StateStopped {
		t.Errorf("a newer observation: moved %q", moved)
	}
	if version, updated := vmRow(); version != 260 || !updated.After(before) {
		t.Errorf("after a change of status: version %d (want 260), updated_at %s (want after %s)", version, updated, before)
	}
	// One of unknown version that shows something new is recorded and keeps
	// the version: an older one is still stale after it.
	observe(0, store.StateStopped, "Stopping")
	if version, _ := vmRow(); version != 260 {
		t.Errorf("after an observation of unknown version: version %d, want 260 kept", version)
	}
	if moved := observe(250, store.StateRunning, "Running"); moved != "" {
		t.Errorf("an observation older than the recorded version moved the request to %s", moved)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE request_id = $1 AND to_state = 'running'`, r.ID); n != 1 {
		t.Errorf("running events = %d", n)
	}
}

// TestObserveBelievesOnlyTheRecordedObject: anything can carry a request's
// label, so an observation counts only when it is of the VM recorded for
// the request; the VM's UID is recorded from the first observation that
// does, and from then on a VM of another UID in its place does not count.
func TestObserveBelievesOnlyTheRecordedObject(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	running := func(ns, name, uid string) store.Observation {
		return store.Observation{Status: "Running", IP: "10.0.0.9", State: store.StateRunning, Namespace: ns, Name: name, UID: uid}
	}
	// Before anything is recorded, nothing counts.
	if moved, err := b.st.Observe(ctx, r.ID, running(r.Namespace, r.Name, "u1")); err != nil || moved != "" {
		t.Fatalf("observe before provisioning: %q %v", moved, err)
	}
	if err := testdb.Provision(ctx, b.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: r.Namespace, Name: r.Name, Manifest: "kind: VirtualMachine\n"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []store.Observation{
		running("elsewhere", r.Name, "u9"),
		running(r.Namespace, r.Name+"-copy", "u9"),
		{Pool: true, State: store.StateStopped, Namespace: r.Namespace, Name: r.Name, UID: "u9"},
		{Gone: true, Namespace: "elsewhere", Name: r.Name},
		{Gone: true, Namespace: r.Namespace, Name: r.Name, UID: "u9"},
	} {
		if moved, err := b.st.Observe(ctx, r.ID, o); !errors.Is(err, store.ErrNotRecorded) || moved != "" {
			t.Errorf("observe %+v: %q %v, want ErrNotRecorded", o, moved, err)
		}
	}
	if got, _ := b.st.WatchedObject(ctx, r.ID); got.ProvisioningSince.IsZero() ||
		got != (store.Watched{Namespace: r.Namespace, Name: r.Name, ProvisioningSince: got.ProvisioningSince}) {
		t.Fatalf("recorded before its first observation (provisioning since it was recorded): %+v", got)
	}
	if moved, err := b.st.Observe(ctx, r.ID, running(r.Namespace, r.Name, "u1")); err != nil || moved != store.StateRunning {
		t.Fatalf("observe the recorded VM: %q %v", moved, err)
	}
	if got, _ := b.st.WatchedObject(ctx, r.ID); got.UID != "u1" {
		t.Fatalf("UID not recorded: %+v", got)
	}
	// Another VM in its place, running or gone, is not the request's.
	stopped := store.Observation{Status: "Stopped", State: store.StateStopped, Namespace: r.Namespace, Name: r.Name, UID: "u2"}
	for _, o := range []store.Observation{stopped, {Gone: true, Namespace: r.Namespace, Name: r.Name, UID: "u2"}} {
		if moved, err := b.st.Observe(ctx, r.ID, o); !errors.Is(err, store.ErrNotRecorded) || moved != "" {
			t.Errorf("observe %+v: %q %v, want ErrNotRecorded", o, moved, err)
		}
	}
	got, err := b.st.Request(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.StateRunning || got.VM.IP != "10.0.0.9" || got.VM.UID != "u1" {
		t.Fatalf("after observations of other objects: %s %+v", got.State, got.VM)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE request_id = $1 AND from_state <> to_state`, r.ID); n != 4 {
		t.Errorf("%d state changes, want 4 (submitted, approved, provisioning, running)", n)
	}
	if _, err := b.st.WatchedObject(ctx, r.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no such request: %v", err)
	}
}

// TestListsLeaveOutTheManifest: the VM list and the watcher's list of
// requests with a VM carry the VM but not its manifest (never shown in a
// list, and the largest column); the request itself still has it.
func TestListsLeaveOutTheManifest(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	const manifest = "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n"
	if err := testdb.Provision(ctx, b.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: "payments", Name: r.Name, UID: "uid-1", Status: "Provisioning", Manifest: manifest}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Pool().Exec(ctx, `UPDATE vms SET ip = '10.0.0.7' WHERE request_id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	page, _, _, err := b.st.RequestPage(ctx, store.RequestPageFilter{TeamID: b.team.ID})
	if err != nil || len(page) != 1 || page[0].VM == nil || page[0].VM.IP != "10.0.0.7" || page[0].VM.Manifest != "" ||
		page[0].Name != r.Name || page[0].TeamName != "payments" || page[0].RequesterLogin != "developer" || page[0].TemplateName != "ubuntu" ||
		page[0].State != store.StateProvisioning || page[0].TemplateVersion != 1 || !page[0].CreatedAt.Equal(r.CreatedAt) {
		t.Errorf("VM list: %+v %v", page, err)
	}
	live, err := b.st.RequestsWithVM(ctx)
	if err != nil || len(live) != 1 || live[0].VM == nil || live[0].VM.Name != r.Name || live[0].VM.Manifest != "" {
		t.Errorf("requests with a VM: %+v %v", live, err)
	}
	one, err := b.st.Request(ctx, r.ID)
	if err != nil || one.VM == nil || one.VM.Manifest != manifest {
		t.Errorf("the request: %+v %v", one.VM, err)
	}
}

// TestRequestPageCountsWhatItsFilterMatches checks the count that comes
// with a page: the filter's, not the page's, and 0 past the last page.
func TestRequestPageCountsWhatItsFilterMatches(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	for i := range 5 {
		tpl := "ubuntu"
		if i%2 == 1 {
			tpl = "gated" // waits for approval
		}
		if _, err := b.submit(t, func(n *store.NewRequest) { n.Template, n.Name = tpl, fmt.Sprintf("vm-%d", i) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		f           store.RequestPageFilter
		rows, total int
		more        bool
	}{
		{store.RequestPageFilter{TeamID: b.team.ID, Limit: 2}, 2, 5, true},
		{store.RequestPageFilter{TeamID: b.team.ID, Limit: 2, Offset: 4}, 1, 5, false},
		{store.RequestPageFilter{TeamID: b.team.ID, State: store.StatePendingApproval}, 2, 2, false},
		{store.RequestPageFilter{TeamID: b.team.ID, RequesterID: b.other.ID}, 0, 0, false},
		{store.RequestPageFilter{TeamID: b.team.ID, Limit: 2, Offset: 6}, 0, 0, false},
	} {
		rs, total, more, err := b.st.RequestPage(ctx, c.f)
		if err != nil || len(rs) != c.rows || total != c.total || more != c.more {
			t.Errorf("%+v: %d rows, total %d, more %v (%v); want %d, %d, %v", c.f, len(rs), total, more, err, c.rows, c.total, c.more)
		}
	}
}
