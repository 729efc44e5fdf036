package store

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
)

// InsightRefreshJob refreshes the insight summary (RefreshInsight).
type InsightRefreshJob struct{}

// Kind implements river.JobArgs.
func (InsightRefreshJob) Kind() string { return "insight_refresh" }

// InsertOpts: one try (the next period tries again) and never two waiting.
func (InsightRefreshJob) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByPeriod: InsightRefreshInterval}}
}

// InsightWorker runs InsightRefreshJob.
type InsightWorker struct {
	river.WorkerDefaults[InsightRefreshJob]
	Store *Store
	Log   *slog.Logger
}

// Timeout allows the first refresh of a large history (every request at
// once) more than the default job timeout; later ones take milliseconds.
func (w *InsightWorker) Timeout(*river.Job[InsightRefreshJob]) time.Duration { return 30 * time.Minute }

// Work refreshes the summary as of now.
func (w *InsightWorker) Work(ctx context.Context, _ *river.Job[InsightRefreshJob]) error {
	start := time.Now()
	res, err := w.Store.RefreshInsight(ctx, start)
	if err != nil {
		return err
	}
	if w.Log != nil {
		w.Log.InfoContext(ctx, "insight refreshed", "requests", res.Requests, "weeks", res.Weeks,
			"periods", res.Periods, "skipped", res.Skipped, "duration_ms", time.Since(start).Milliseconds())
	}
	return nil
}

// InsightPeriodicJob schedules the refresh every InsightRefreshInterval, and
// once when the job client starts. River runs periodic jobs on its elected
// leader only, so replicas do not refresh side by side (and the refresh
// holds an advisory lock besides).
func InsightPeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(InsightRefreshInterval),
		func() (river.JobArgs, *river.InsertOpts) { return InsightRefreshJob{}, nil },
		&river.PeriodicJobOpts{ID: "insight_refresh", RunOnStart: true})
}
