package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"paddock/internal/store"
)

// A change of desired state made while the request's reconcile job runs is
// de-duplicated against that job, and the job sees it before it completes:
// FinishReconcile refuses to complete a job that acted on an older
// generation, and once it has completed one, the next change enqueues anew.
func TestReconcileJobSeesChangesMadeWhileItRuns(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r := b.running(t, "web-1", "small")
	jobs := func(state string) int {
		return countRows(t, b.st, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND state = $2
			AND (args->>'request_id')::bigint = $1`, r.ID, state)
	}
	if n := jobs("available"); n != 1 {
		t.Fatalf("%d reconcile jobs after submit, want 1", n)
	}
	// The job starts: it reads generation gen and acts on it.
	if _, err := b.st.Pool().Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()
		WHERE kind = 'reconcile' AND (args->>'request_id')::bigint = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	gen := r.Generation
	// Meanwhile the owner stops the VM: no second job while one runs.
	if err := b.st.RequestAction(ctx, r.ID, store.ActionStop, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	if n := jobs("available"); n != 0 {
		t.Fatalf("%d jobs enqueued beside the running one", n)
	}
	completed := 0
	complete := func(tx pgx.Tx) error {
		completed++
		_, err := tx.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now()
			WHERE kind = 'reconcile' AND (args->>'request_id')::bigint = $1`, r.ID)
		return err
	}
	done, err := b.st.FinishReconcile(ctx, r.ID, gen, complete)
	if err != nil || done || completed != 0 {
		t.Fatalf("finishing generation %d after a change: done=%v completed=%d err=%v", gen, done, completed, err)
	}
	// The job reconciles again and acts on the new generation.
	now, _ := b.st.Request(ctx, r.ID)
	if now.Generation != gen+1 || now.Desired != store.DesiredStopped {
		t.Fatalf("after stop: generation %d desired %s", now.Generation, now.Desired)
	}
	done, err = b.st.FinishReconcile(ctx, r.ID, now.Generation, complete)
	if err != nil || !done || completed != 1 {
		t.Fatalf("finishing the current generation: done=%v completed=%d err=%v", done, completed, err)
	}
	// With the job complete, the next change enqueues a new one.
	if err := b.st.RequestAction(ctx, r.ID, store.ActionStart, store.UserActor(b.dev)); err == nil {
		t.Fatal("start allowed on a running request")
	}
	if _, err := b.st.Transition(ctx, r.ID, store.StateStopped, store.ActorCluster, "state", "", store.StateRunning); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RequestAction(ctx, r.ID, store.ActionStart, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	if n := jobs("available"); n != 1 {
		t.Fatalf("%d jobs after a change once the job completed, want 1", n)
	}
	// A request that no longer exists: its job completes.
	done, err = b.st.FinishReconcile(ctx, 999999, 0, func(pgx.Tx) error { return nil })
	if err != nil || !done {
		t.Fatalf("missing request: done=%v err=%v", done, err)
	}
}

// A restart is kept until it is done; one asked for again meanwhile is
// kept after the first is done.
func TestRestartIsKeptUntilDone(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r := b.running(t, "web-1", "small")
	if err := b.st.RequestAction(ctx, r.ID, store.ActionRestart, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	first, _ := b.st.Request(ctx, r.ID)
	if first.RestartAsked == nil || first.Generation != r.Generation+1 {
		t.Fatalf("restart not recorded: %v generation %d", first.RestartAsked, first.Generation)
	}
	if _, err := b.st.Pool().Exec(ctx, `UPDATE requests SET restart_asked_at = restart_asked_at + interval '1 second' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RestartDone(ctx, r.ID, *first.RestartAsked); err != nil {
		t.Fatal(err)
	}
	if again, _ := b.st.Request(ctx, r.ID); again.RestartAsked == nil {
		t.Fatal("a restart asked for after the one done was forgotten")
	}
	again, _ := b.st.Request(ctx, r.ID)
	if err := b.st.RestartDone(ctx, r.ID, *again.RestartAsked); err != nil {
		t.Fatal(err)
	}
	if done, _ := b.st.Request(ctx, r.ID); done.RestartAsked != nil {
		t.Fatal("restart still asked for once done")
	}
}

// A VM started outside Paddock is drift, taken as the new desired state;
// but while Paddock's own reconcile of a change is still to come, that
// change is the newer wish and the observation changes no desire.
func TestStartedOutsidePaddockIsDriftUnlessPaddockIsActing(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r := b.running(t, "web-1", "small")
	vm := store.Observation{Namespace: r.Namespace, Name: r.Name, UID: "uid-1"}
	stopped, running := vm, vm
	stopped.State, stopped.Status = store.StateStopped, "Stopped"
	running.State, running.Status = store.StateRunning, "Running"
	if err := b.st.RequestAction(ctx, r.ID, store.ActionStop, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Observe(ctx, r.ID, stopped); err != nil {
		t.Fatal(err)
	}
	// The stop's job has not run: a running VM seen now is Paddock's
	// business, not drift.
	if _, err := b.st.Observe(ctx, r.ID, running); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.st.Request(ctx, r.ID); got.Desired != store.DesiredStopped {
		t.Fatalf("desired %s while Paddock's stop is pending", got.Desired)
	}
	if _, err := b.st.Pool().Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE kind = 'reconcile'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Observe(ctx, r.ID, stopped); err != nil {
		t.Fatal(err)
	}
	moved, err := b.st.Observe(ctx, r.ID, running)
	if err != nil || moved != store.StateRunning {
		t.Fatalf("started outside Paddock: moved %q err %v", moved, err)
	}
	got, _ := b.st.Request(ctx, r.ID)
	evs, _ := b.st.Events(ctx, r.ID)
	if last := evs[len(evs)-1]; got.Desired != store.DesiredRunning || last.Kind != "drift" || last.Reason != "the VM was started outside Paddock" {
		t.Fatalf("desired %s, last event %+v", got.Desired, last)
	}
}
