package provision

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"paddock/internal/store"
)

// insightRefreshJob refreshes the managers' insight summary
// (store.RefreshInsight).
type insightRefreshJob struct{}

// Kind implements river.JobArgs.
func (insightRefreshJob) Kind() string { return "insight_refresh" }

// InsertOpts: one try (the next period tries again) and never two waiting.
func (insightRefreshJob) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByPeriod: store.InsightRefreshInterval}}
}

// Insight keeps the insight summary fresh in the background.
type Insight struct {
	Store *store.Store
	Log   *slog.Logger
}

// Register adds the refresh worker to a River worker set.
func (i *Insight) Register(ws *river.Workers) { river.AddWorker(ws, &insightWorker{i: i}) }

// PeriodicJobs schedules the refresh every store.InsightRefreshInterval, and
// once when the job client starts. River runs periodic jobs on its elected
// leader only, so replicas do not refresh side by side (and the refresh
// holds an advisory lock besides).
func (i *Insight) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(store.InsightRefreshInterval),
		func() (river.JobArgs, *river.InsertOpts) { return insightRefreshJob{}, nil },
		&river.PeriodicJobOpts{ID: "insight_refresh", RunOnStart: true})}
}

type insightWorker struct {
	river.WorkerDefaults[insightRefreshJob]
	i *Insight
}

// Timeout allows the first refresh of a large history (every request at
// once) more than the default job timeout; later ones take milliseconds.
func (w *insightWorker) Timeout(*river.Job[insightRefreshJob]) time.Duration { return 30 * time.Minute }

// Work refreshes the summary as of now.
func (w *insightWorker) Work(ctx context.Context, _ *river.Job[insightRefreshJob]) error {
	start := time.Now()
	res, err := w.i.Store.RefreshInsight(ctx, start)
	if err != nil {
		return err
	}
	if w.i.Log != nil {
		w.i.Log.InfoContext(ctx, "insight refreshed", "requests", res.Requests, "weeks", res.Weeks,
			"periods", res.Periods, "skipped", res.Skipped, "duration_ms", time.Since(start).Milliseconds())
	}
	return nil
}
