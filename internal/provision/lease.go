package provision

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"paddock/internal/store"
)

// Leases keeps VM leases: reminders before expiry, stopping a VM whose lease
// ended, and deleting it after a grace period. It runs as a River periodic
// job; the work is decided from the database on every run, so restarts and
// missed runs lose nothing.
type Leases struct {
	Store *store.Store
	// Grace is how long an expired VM stays (stopped) before it is deleted.
	Grace time.Duration
	Log   *slog.Logger
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
}

func (l *Leases) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Register adds the lease worker to a River worker set.
func (l *Leases) Register(ws *river.Workers) { river.AddWorker(ws, &leaseWorker{l: l}) }

// PeriodicJobs schedules a sweep every interval, and one at start-up.
func (l *Leases) PeriodicJobs(every time.Duration) []*river.PeriodicJob {
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return store.LeaseSweepJob{}, nil },
		&river.PeriodicJobOpts{ID: "lease_sweep", RunOnStart: true})}
}

type leaseWorker struct {
	river.WorkerDefaults[store.LeaseSweepJob]
	l *Leases
}

func (w *leaseWorker) Work(ctx context.Context, job *river.Job[store.LeaseSweepJob]) error {
	_, err := w.l.Sweep(ctx)
	return err
}

// Sweep does every lease step due at the keeper's clock; the periodic job
// calls it, and tests call it with a moved clock.
func (l *Leases) Sweep(ctx context.Context) (store.LeaseSweep, error) {
	grace := l.Grace
	if grace <= 0 {
		grace = store.DefaultLeaseGrace
	}
	sw, err := l.Store.SweepLeases(ctx, l.now(), grace)
	if sw != (store.LeaseSweep{}) && l.Log != nil {
		l.Log.Info("lease sweep", "warned", sw.Warned, "expired", sw.Expired, "deleted", sw.Deleted)
	}
	return sw, err
}
