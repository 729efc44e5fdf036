package provision

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"

	"paddock/internal/store"
)

// Workers carries out provisioning and day-2 actions as River jobs.
type Workers struct {
	Store   *store.Store
	Cluster *Cluster
	Watcher *Watcher
	Log     *slog.Logger
	// Metrics, when set, records provisioning durations and failures.
	Metrics *Metrics
	// Failpoint, when set, is called at named points of provisioning
	// ("before-job" as a provisioning job starts, "before-create",
	// "after-create"); the crash tests make it kill the process there.
	Failpoint func(name string)
}

func (w *Workers) failpoint(name string) {
	if w.Failpoint != nil {
		w.Failpoint(name)
	}
}

// Register adds Paddock's workers to a River worker set.
func (w *Workers) Register(ws *river.Workers) {
	river.AddWorker(ws, &reconcileWorker{w: w})
	river.AddWorker(ws, &rolloutWorker{store: w.Store, log: w.Log.With("component", "rollout")})
}

// backoff retries quickly at first and never waits more than 30 s, so a
// cluster back from an outage is used within half a minute.
func backoff(attempt int) time.Time {
	d := min(time.Duration(1<<min(attempt, 5))*time.Second, 30*time.Second)
	d += time.Duration(rand.Int64N(int64(d / 4)))
	return time.Now().Add(d)
}
