package provision

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/riverqueue/river"

	"paddock/internal/store"
)

// rolloutWorker runs one step of a rollout: store.StepRollout reads the
// rollout's open items under its row lock, PlanRolloutStep decides, and the
// store records the decision and rebuilds the next batch in that same
// transaction. Each step schedules the next (store.RolloutPoll later) as it
// commits, so a waiting rollout holds no worker.
type rolloutWorker struct {
	river.WorkerDefaults[store.RolloutJob]
	store *store.Store
	log   *slog.Logger
}

func (w *rolloutWorker) Work(ctx context.Context, job *river.Job[store.RolloutJob]) error {
	res, err := w.store.StepRollout(ctx, job.Args.RolloutID, job.Args.Generation, PlanRolloutStep)
	if err != nil {
		return err
	}
	if res != "" && res != "waiting" && res != "stale" {
		w.log.InfoContext(ctx, "rollout step", "rollout_id", job.Args.RolloutID, "step", res)
	}
	return nil
}

// PlanRolloutStep is a rollout's batch logic, without I/O. The VMs being
// rebuilt settle first: running (or stopped) on the target version is done,
// deleted or expired is skipped. While any is still being rebuilt, the step
// waits, and a failed one waits with it: no batch starts before then
// anyway, and the pause that follows names every failure of the batch.
// Otherwise the lowest batch with pending VMs starts: what was deleted, made
// a pet, is already on the target version or expired is skipped with why;
// what is still on its way up waits for a later step; the rest is rebuilt.
// With no pending VM left the rollout is complete.
func PlanRolloutStep(v store.RolloutView) store.RolloutStep {
	var step store.RolloutStep
	settle := func(it store.RolloutStepItem, state, reason string) {
		step.Settle = append(step.Settle, store.RolloutOutcome{RequestID: it.RequestID, State: state, Reason: reason})
	}

	var failed []store.RolloutStepItem
	rebuilding := 0
	for _, it := range v.Items {
		if it.State != store.ItemRebuilding {
			continue
		}
		switch {
		case it.Request.Terminal() || it.Desired == store.DesiredDeleted:
			settle(it, store.ItemSkipped, "deleted during the rollout")
		case it.Version >= v.Target && (it.Request == store.StateRunning || it.Request == store.StateStopped):
			settle(it, store.ItemDone, "")
		case it.Request == store.StateFailed:
			failed = append(failed, it)
		case it.Request == store.StateExpired:
			settle(it, store.ItemSkipped, "its lease expired during the rollout")
		default:
			rebuilding++
		}
	}
	if rebuilding > 0 {
		step.Did = "waiting"
		return step
	}
	if len(failed) > 0 {
		words := make([]string, len(failed))
		for i, it := range failed {
			reason := it.Reason
			if reason == "" {
				reason = "the VM failed"
			}
			settle(it, store.ItemFailed, reason)
			words[i] = fmt.Sprintf("%s (request #%d, owner %s): %s", it.Name, it.RequestID, it.Owner, reason)
		}
		step.Pause = "Paused: " + strings.Join(words, "; ") + ". Fix the cause, then resume: failed VMs are rebuilt again."
		step.Did = "paused on failure"
		return step
	}

	for _, it := range v.Items {
		if it.State == store.ItemPending && (step.Batch == 0 || it.Batch < step.Batch) {
			step.Batch = it.Batch
		}
	}
	if step.Batch == 0 {
		step.Complete = true
		step.Did = "completed"
		return step
	}
	for _, it := range v.Items {
		if it.State != store.ItemPending || it.Batch != step.Batch {
			continue
		}
		switch {
		case it.Request.Terminal() || it.Desired == store.DesiredDeleted:
			settle(it, store.ItemSkipped, "deleted before its batch")
		case it.Pet:
			settle(it, store.ItemSkipped, fmt.Sprintf("marked as a pet by %s before its batch", it.Owner))
		case it.Version >= v.Target && it.Attempts == 0:
			settle(it, store.ItemSkipped, fmt.Sprintf("already on v%d", it.Version))
		case it.Request == store.StateExpired:
			settle(it, store.ItemSkipped, "its lease expired; extend it and rebuild it by hand")
		case it.Request == store.StateApproved || it.Request == store.StateProvisioning:
			// Still on its way up (or being rebuilt by hand): a later step.
		default:
			step.Rebuild = append(step.Rebuild, it.RequestID)
		}
	}
	step.Did = fmt.Sprintf("batch %d of %d", step.Batch, v.Batches)
	return step
}
