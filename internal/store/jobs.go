package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// ReconcileJob asks the provisioner to make the cluster match what a
// request's row says (provisioning.Reconcile): create its VM or pool,
// replace it for a rebuild, set its run strategy and replicas, restart it,
// delete it. It carries nothing but the request: a late or retried job
// applies the latest desired state, never a stale one.
//
// Every change of desired state enqueues it in the change's own
// transaction (reconcileLater). At most one job per request is waiting or
// running at a time; a change made while it runs bumps the request's
// generation, which the running job sees before it completes (see
// FinishReconcile), so no change is lost to the de-duplication.
type ReconcileJob struct {
	RequestID int64 `json:"request_id"`
}

// Kind implements river.JobArgs.
func (ReconcileJob) Kind() string { return "reconcile" }

// reconcileUniqueStates are the job states in which a second enqueue for the
// same request is a no-op (River needs at least these four plus pending).
var reconcileUniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// InsertOpts retries for a long while (the cluster may be away for long)
// and keeps one job per request.
func (ReconcileJob) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 100, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: reconcileUniqueStates}}
}

// reconcileLater records that request id's desired state changed (its
// generation) and enqueues its ReconcileJob, inside tx.
func (s *Store) reconcileLater(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, `UPDATE requests SET generation = generation + 1 WHERE id = $1`, id); err != nil {
		return fmt.Errorf("bump generation of request %d: %w", id, err)
	}
	return s.enqueue(ctx, tx, ReconcileJob{RequestID: id})
}

// FinishReconcile ends a reconcile of request id that acted on generation
// gen: when the request's generation is still gen, it calls complete (which
// marks the job done inside tx) and reports true; otherwise the desired
// state changed meanwhile, nothing is completed, and the caller reconciles
// again. The request's row lock orders this against every change of
// desired state, whose enqueue is then either seen here or made after the
// job is complete.
func (s *Store) FinishReconcile(ctx context.Context, id, gen int64, complete func(pgx.Tx) error) (bool, error) {
	done := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var now int64
		err := tx.QueryRow(ctx, `SELECT generation FROM requests WHERE id = $1 FOR UPDATE`, id).Scan(&now)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("generation of request %d: %w", id, err)
		}
		if err == nil && now != gen {
			return nil
		}
		done = true
		return complete(tx)
	})
	return done, err
}

// Desired is what the owner (or the lease keeper) wants of a request's VM.
type Desired string

// The desired states.
const (
	DesiredRunning Desired = "running"
	DesiredStopped Desired = "stopped"
	DesiredDeleted Desired = "deleted"
)

// Action is a day-2 operation on a VM.
type Action string

// The actions an owner can take.
const (
	ActionStart   Action = "start"
	ActionStop    Action = "stop"
	ActionRestart Action = "restart"
	ActionDelete  Action = "delete"
)
