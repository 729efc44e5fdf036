package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/testdb"
)

// rebuilt plays the provisioner and the cluster for a request the rollout
// asked to rebuild: the new VM is recorded, then runs (or fails with why).
func (b bundle) rebuilt(t *testing.T, id int64, failure string) {
	t.Helper()
	ctx := context.Background()
	err := testdb.Provision(ctx, b.st, id, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: "payments", Name: r.Name, UID: fmt.Sprintf("uid-%d-v%d", id, r.TemplateVersion), Status: "Provisioning"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	to, reason := store.StateRunning, ""
	if failure != "" {
		to, reason = store.StateFailed, failure
	}
	if _, err := b.st.Transition(ctx, id, to, store.ActorCluster, "state", reason, store.StateProvisioning); err != nil {
		t.Fatal(err)
	}
}

func (b bundle) step(t *testing.T, id int64) string {
	t.Helper()
	r, err := b.st.Rollout(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	did, err := b.st.StepRollout(context.Background(), id, r.Generation, provision.PlanRolloutStep)
	if err != nil {
		t.Fatal(err)
	}
	return did
}

func itemStates(t *testing.T, b bundle, id int64) string {
	t.Helper()
	r, err := b.st.Rollout(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, it := range r.Items {
		s = append(s, it.Name+"="+it.State)
	}
	return strings.Join(s, " ")
}

// TestRolloutBatchesPauseOnFailureResumeAndPets walks a rollout of seven VMs
// (one a pet) in batches of three through the store: each batch starts only
// when the previous one runs; a failure pauses it with the reason; a stale
// step does nothing; resume rebuilds the failed VM again; it completes.
func TestRolloutBatchesPauseOnFailureResumeAndPets(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var ids []int64
	for i := range 7 {
		ids = append(ids, b.running(t, fmt.Sprintf("vm-%d", i), "small").ID)
	}
	if err := b.st.SetPet(ctx, ids[1], true, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	platform, err := b.st.EnsureUser(ctx, "plat", "Plat", store.RolePlatform, nil)
	if err != nil {
		t.Fatal(err)
	}
	actor := store.UserActor(platform)

	// Nothing newer to roll out to.
	_, err = b.st.StartRollout(ctx, store.NewRollout{Template: "ubuntu"}, actor)
	var verr *store.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(verr.For("version"), "no VM of ubuntu is on a version older than v1") {
		t.Fatalf("rollout to the current version: %v", err)
	}
	spec := testTemplate("ubuntu", true)
	spec.Image.ContainerDisk = "quay.io/containerdisks/ubuntu:24.10"
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []store.NewRollout{{Template: "ubuntu", BatchSize: 101}, {Template: "nope"}, {Template: "ubuntu", Version: 3}} {
		if _, err := b.st.StartRollout(ctx, bad, actor); !errors.As(err, &verr) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	id, err := b.st.StartRollout(ctx, store.NewRollout{Template: "ubuntu", BatchSize: 3}, actor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.StartRollout(ctx, store.NewRollout{Template: "ubuntu"}, actor); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second rollout: %v", err)
	}
	// Owners are told, pets are listed as skipped.
	if n := countRows(t, b.st, `SELECT count(*) FROM notifications WHERE kind = 'rollout_scheduled'`); n != 6 {
		t.Errorf("%d notifications, want 6", n)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE kind = 'rollout' AND reason LIKE '%batch 1 of 2%'`); n != 3 {
		t.Errorf("%d batch-1 events, want 3", n)
	}
	r, err := b.st.Rollout(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Skipped()) != 1 || r.Skipped()[0].Name != "vm-1" || !strings.Contains(r.Skipped()[0].Reason, "pet") || r.Batches != 2 {
		t.Fatalf("skipped %+v, batches %d", r.Skipped(), r.Batches)
	}

	// Batch 1: vm-0, vm-2, vm-3.
	b.step(t, id)
	if got, want := itemStates(t, b, id), "vm-0=rebuilding vm-1=skipped vm-2=rebuilding vm-3=rebuilding vm-4=pending vm-5=pending vm-6=pending"; got != want {
		t.Fatalf("after step 1:\n got %s\nwant %s", got, want)
	}
	// Nothing more starts until the batch runs.
	if did := b.step(t, id); did != "waiting" {
		t.Errorf("step = %q", did)
	}
	b.rebuilt(t, ids[0], "")
	b.rebuilt(t, ids[2], "")
	if did := b.step(t, id); did != "waiting" {
		t.Errorf("step with one VM still rebuilding = %q", did)
	}
	b.rebuilt(t, ids[3], "")
	b.step(t, id)
	if got, want := itemStates(t, b, id), "vm-0=done vm-1=skipped vm-2=done vm-3=done vm-4=rebuilding vm-5=rebuilding vm-6=rebuilding"; got != want {
		t.Fatalf("after batch 1:\n got %s\nwant %s", got, want)
	}
	// vm-5 fails: the rollout waits for vm-6, the rest of its batch, then
	// pauses, naming it.
	gen := func() int {
		r, err := b.st.Rollout(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r.Generation
	}
	oldGen := gen()
	b.rebuilt(t, ids[4], "")
	b.rebuilt(t, ids[5], "ErrImagePull: manifest unknown")
	if did := b.step(t, id); did != "waiting" {
		t.Errorf("step with a failure and a VM still rebuilding = %q", did)
	}
	if r, _ := b.st.Rollout(ctx, id); r.State != store.RolloutRunning {
		t.Errorf("paused before its batch settled: %s %q", r.State, r.Reason)
	}
	b.rebuilt(t, ids[6], "")
	b.step(t, id)
	r, _ = b.st.Rollout(ctx, id)
	if r.State != store.RolloutPaused || !strings.Contains(r.Reason, "vm-5") || !strings.Contains(r.Reason, "ErrImagePull") {
		t.Fatalf("after the failure: %s %q", r.State, r.Reason)
	}
	// A step of the generation before the pause does nothing.
	if did, err := b.st.StepRollout(ctx, id, oldGen, provision.PlanRolloutStep); err != nil || did != "stale" {
		t.Errorf("stale step = %q, %v", did, err)
	}
	if err := b.st.PauseRollout(ctx, id, actor); !errors.Is(err, store.ErrConflict) {
		t.Errorf("pause a paused rollout: %v", err)
	}
	if err := b.st.ResumeRollout(ctx, id, actor); err != nil {
		t.Fatal(err)
	}
	b.step(t, id) // vm-5 rebuilt again
	if got, want := itemStates(t, b, id), "vm-0=done vm-1=skipped vm-2=done vm-3=done vm-4=done vm-5=rebuilding vm-6=done"; got != want {
		t.Fatalf("after resume:\n got %s\nwant %s", got, want)
	}
	b.rebuilt(t, ids[5], "")
	b.step(t, id)
	if did := b.step(t, id); did != "stale" {
		t.Errorf("step after completion = %q", did)
	}
	r, _ = b.st.Rollout(ctx, id)
	if r.State != store.RolloutCompleted || r.FinishedAt == nil {
		t.Errorf("rollout %s, finished %v", r.State, r.FinishedAt)
	}
	for i, rid := range ids {
		req, err := b.st.Request(ctx, rid)
		if err != nil {
			t.Fatal(err)
		}
		want := 2
		if i == 1 {
			want = 1 // the pet
		}
		if req.TemplateVersion != want || req.State != store.StateRunning {
			t.Errorf("vm-%d: v%d %s", i, req.TemplateVersion, req.State)
		}
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE request_id = $1 AND kind = 'rebuild'`, ids[5]); n != 2 {
		t.Errorf("vm-5 rebuilt %d times, want 2", n)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM audit_log WHERE action LIKE 'rollout_%'`); n != 2 {
		t.Errorf("%d rollout audit entries, want 2 (start, resume)", n)
	}
}

// TestRolloutSkipsWhatChangedAndCancels: a VM made a pet or deleted after
// the rollout started is skipped when its batch comes; a size the new
// version lacks fails the VM and pauses; cancel leaves the rest alone.
func TestRolloutSkipsWhatChangedAndCancels(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	platform, err := b.st.EnsureUser(ctx, "plat", "Plat", store.RolePlatform, nil)
	if err != nil {
		t.Fatal(err)
	}
	actor := store.UserActor(platform)
	a := b.running(t, "a", "small")
	p := b.running(t, "p", "small")
	d := b.running(t, "d", "small")
	c := b.running(t, "c", "custom")
	e := b.running(t, "e", "small")
	spec := testTemplate("ubuntu", true)
	spec.Sizes = spec.Sizes[:1] // v2 has no "custom"
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	id, err := b.st.StartRollout(ctx, store.NewRollout{Template: "ubuntu", BatchSize: 4}, actor)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.SetPet(ctx, p.ID, true, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RequestAction(ctx, d.ID, store.ActionDelete, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	b.step(t, id)
	if got, want := itemStates(t, b, id), "a=rebuilding p=skipped d=skipped c=failed e=pending"; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	r, _ := b.st.Rollout(ctx, id)
	if r.State != store.RolloutPaused || !strings.Contains(r.Reason, `no size "custom"`) {
		t.Errorf("%s %q", r.State, r.Reason)
	}
	req, _ := b.st.Request(ctx, c.ID)
	if req.State != store.StateRunning || req.TemplateVersion != 1 {
		t.Errorf("the VM that could not be rebuilt: %s v%d", req.State, req.TemplateVersion)
	}
	if err := b.st.CancelRollout(ctx, id, actor); err != nil {
		t.Fatal(err)
	}
	if got, want := itemStates(t, b, id), "a=rebuilding p=skipped d=skipped c=cancelled e=cancelled"; got != want {
		t.Fatalf("after cancel: got %s\nwant %s", got, want)
	}
	if err := b.st.ResumeRollout(ctx, id, actor); !errors.Is(err, store.ErrConflict) {
		t.Errorf("resume a cancelled rollout: %v", err)
	}
	req, _ = b.st.Request(ctx, e.ID)
	if req.TemplateVersion != 1 || req.State != store.StateRunning {
		t.Errorf("e after cancel: %s v%d", req.State, req.TemplateVersion)
	}
	_ = a
	// A new rollout may start once this one is cancelled.
	if _, err := b.st.StartRollout(ctx, store.NewRollout{Template: "ubuntu", BatchSize: 4}, actor); err != nil {
		t.Errorf("rollout after cancel: %v", err)
	}
}

// TestRolloutStepRunTwiceAtOnce: the same step run twice at the same time
// (a job rescued while its first run still works) rebuilds each VM once:
// the second run waits on the rollout's row and then finds itself stale.
func TestRolloutStepRunTwiceAtOnce(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	for i := range 4 {
		b.running(t, fmt.Sprintf("dup-%d", i), "small")
	}
	spec := testTemplate("ubuntu", true)
	spec.CloudInit += "# v2\n"
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	platform, err := b.st.EnsureUser(ctx, "plat", "Plat", store.RolePlatform, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := b.st.StartRollout(ctx, store.NewRollout{Template: "ubuntu", BatchSize: 2}, store.UserActor(platform))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := b.st.Rollout(ctx, id)
	results := make(chan string, 2)
	for range 2 {
		go func() {
			did, err := b.st.StepRollout(ctx, id, r.Generation, provision.PlanRolloutStep)
			if err != nil {
				did = err.Error()
			}
			results <- did
		}()
	}
	got := []string{<-results, <-results}
	if (got[0] == "stale") == (got[1] == "stale") {
		t.Errorf("two runs of one step: %q", got)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE kind = 'rebuild'`); n != 2 {
		t.Errorf("%d rebuilds, want 2 (one batch)", n)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM river_job WHERE kind = 'rollout_step' AND state = 'available'`); n != 1 {
		t.Errorf("%d step jobs available, want 1 (the first)", n)
	}
	// The step it handed over to waits in the queue, scheduled a poll
	// interval later, rather than in a worker that sleeps.
	if n := countRows(t, b.st, `SELECT count(*) FROM river_job WHERE kind = 'rollout_step' AND state = 'scheduled'
		AND scheduled_at > now() + interval '100 milliseconds'`); n != 1 {
		t.Errorf("%d step jobs scheduled ahead, want 1 (the one the step handed over to)", n)
	}
}
