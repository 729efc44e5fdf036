package provision

import (
	"context"
	"log/slog"

	"github.com/riverqueue/river"

	"paddock/internal/store"
)

// rolloutWorker runs one step of a rollout (store.StepRollout): rebuild the
// next batch once the previous one runs. Each step schedules the next
// (store.RolloutPoll later) in the transaction that took it, so a waiting
// rollout holds no worker.
type rolloutWorker struct {
	river.WorkerDefaults[store.RolloutJob]
	store *store.Store
	log   *slog.Logger
}

func (w *rolloutWorker) Work(ctx context.Context, job *river.Job[store.RolloutJob]) error {
	res, err := w.store.StepRollout(ctx, job.Args.RolloutID, job.Args.Generation)
	if err != nil {
		return err
	}
	if res != "" && res != "waiting" && res != "stale" {
		w.log.InfoContext(ctx, "rollout step", "rollout_id", job.Args.RolloutID, "step", res)
	}
	return nil
}
