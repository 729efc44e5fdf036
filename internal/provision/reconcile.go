package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/store"
)

// reconcileWorker runs store.ReconcileJob: Reconcile until the request's
// desired state stopped changing, then completes the job in the same
// transaction that checked it (store.FinishReconcile).
type reconcileWorker struct {
	river.WorkerDefaults[store.ReconcileJob]
	w *Workers
}

func (rw *reconcileWorker) NextRetry(job *river.Job[store.ReconcileJob]) time.Time {
	return backoff(job.Attempt)
}

// reconcileRounds bounds how often one job reconciles a request whose
// desired state keeps changing before it lets other jobs run.
const reconcileRounds = 5

func (rw *reconcileWorker) Work(ctx context.Context, job *river.Job[store.ReconcileJob]) error {
	rw.w.failpoint("before-job")
	id := job.Args.RequestID
	log := rw.w.Log.With("request_id", id, "job_id", job.ID, "attempt", job.Attempt)
	for range reconcileRounds {
		gen, err := rw.w.reconcile(ctx, id, job.CreatedAt, log)
		if err != nil {
			return err
		}
		done, err := rw.w.Store.FinishReconcile(ctx, id, gen, func(tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		})
		if err != nil || done {
			return err
		}
	}
	return river.JobSnooze(time.Second)
}

// Reconcile makes the cluster match request id's row once, as the
// reconcile job does, and returns the generation it acted on.
func (w *Workers) Reconcile(ctx context.Context, id int64) (int64, error) {
	return w.reconcile(ctx, id, time.Time{}, w.Log.With("request_id", id))
}

// errWaitOldObject makes River come back once the old object of a rebuild
// is gone.
var errWaitOldObject = errors.New("the old object is still being deleted")

// rebuildPoll and rebuildWait bound how long one reconcile waits for a
// rebuild's old object to go before it lets the job sleep in the queue.
const (
	rebuildPoll = 100 * time.Millisecond
	rebuildWait = 10 * time.Second
)

// reconcile is one pass of Reconcile, shaped like a controller's sync
// handler: read the desired state (the request row), read the actual state
// (the watcher's caches, the API server where the cache cannot tell), act,
// and record the outcome in short store transactions; no transaction is
// open during a cluster call. enqueued, when set, is when the job was made
// (for the provisioning-time metrics). It returns the request's generation
// as read, -1 when the request does not exist.
func (w *Workers) reconcile(ctx context.Context, id int64, enqueued time.Time, log *slog.Logger) (int64, error) {
	r, err := w.Store.Request(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	k := kindOf(r)
	ns, name := r.Namespace, r.Name
	if r.VM != nil {
		ns, name = r.VM.Namespace, r.VM.Name
	}
	rid := strconv.FormatInt(id, 10)
	c := w.Cluster
	switch {
	case r.State.Terminal(), r.State == store.StatePendingApproval:
		return r.Generation, nil
	case r.Desired == store.DesiredDeleted:
		if err := k.remove(ctx, c, ns, name, rid); err != nil && !errors.Is(err, ErrNotOurs) {
			// ErrNotOurs: someone else's object took the name; ours is gone.
			return 0, err
		}
		_, err := w.Store.Transition(ctx, id, store.StateDeleted, store.ActorProvisioner, "state",
			k.String()+" and its disks deleted", store.DeletableStates...)
		log.Info("deleted", "kind", k.String(), "object", ns+"/"+name)
		return r.Generation, err
	case r.State == store.StateApproved:
		return r.Generation, w.create(ctx, k, r, enqueued, log)
	case r.VM == nil:
		return r.Generation, nil
	}
	kick := func() {
		if w.Watcher != nil {
			k.kick(w.Watcher, ns, name, id)
		}
	}
	err = w.converge(ctx, k, r, ns, name, rid, log)
	if apierrors.IsNotFound(err) || errors.Is(err, ErrNotOurs) {
		// The object vanished behind Paddock's back: the watcher records it.
		kick()
		return r.Generation, nil
	}
	if err != nil {
		return 0, err
	}
	kick()
	return r.Generation, nil
}

// converge applies a recorded object's desired run strategy, replicas and
// an asked-for restart, skipping what the watcher's cache shows is done.
func (w *Workers) converge(ctx context.Context, k kind, r store.Request, ns, name, rid string, log *slog.Logger) error {
	c := w.Cluster
	want := virtv1.RunStrategyAlways
	if r.Desired == store.DesiredStopped {
		want = virtv1.RunStrategyHalted
	}
	rs, replicas, cached := k.cached(w.Watcher, ns, name, rid)
	if !cached || rs != want || k.String() == (poolKind{}).String() {
		// A pool's members each carry the run strategy: set it on all.
		if err := k.setRunStrategy(ctx, c, ns, name, rid, want); err != nil {
			return err
		}
		if !cached || rs != want {
			log.Info("run strategy set", "kind", k.String(), "object", ns+"/"+name, "run_strategy", want)
		}
	}
	if r.Pool && (!cached || replicas != r.Replicas) {
		if err := k.scale(ctx, c, ns, name, rid, r.Replicas); err != nil {
			return err
		}
		log.Info("pool scaled", "pool", ns+"/"+name, "replicas", r.Replicas)
	}
	if r.RestartAsked != nil && r.State == store.StateRunning {
		if err := k.restart(ctx, c, ns, name, rid); err != nil {
			return err
		}
		log.Info("restarted", "kind", k.String(), "object", ns+"/"+name)
	}
	if r.RestartAsked != nil {
		// Done, or moot: a VM that is not running is not restarted.
		return w.Store.RestartDone(ctx, r.ID, *r.RestartAsked)
	}
	return nil
}

// create makes the object of an approved request and records it. For a
// rebuild (an object is recorded already) the old object goes first: the
// request never has two, and the new one (same name) never meets the old
// one's leftovers.
func (w *Workers) create(ctx context.Context, k kind, r store.Request, enqueued time.Time, log *slog.Logger) error {
	rid := strconv.FormatInt(r.ID, 10)
	if r.VM != nil {
		ns, name := r.VM.Namespace, r.VM.Name
		deadline := time.Now().Add(rebuildWait)
		for {
			gone, err := k.removeForRebuild(ctx, w.Cluster, ns, name, rid, r.VM.UID)
			if err != nil {
				return err
			}
			if gone {
				break
			}
			if time.Now().After(deadline) {
				log.Info("waiting for the old object to be deleted", "kind", k.String(), "object", ns+"/"+name)
				return river.JobSnooze(2 * time.Second)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(rebuildPoll):
			}
		}
		if err := w.Store.AddEvent(ctx, r.ID, store.ActorProvisioner, "rebuild_deleted",
			fmt.Sprintf("old %s %s/%s deleted", k, ns, name)); err != nil {
			return err
		}
		log.Info("old object gone; creating its replacement", "kind", k.String(), "object", ns+"/"+name)
		enqueued = time.Time{} // the metrics time first provisioning only
	}
	tv, err := w.Store.TemplateVersion(ctx, r.TemplateID, r.TemplateVersion)
	if err != nil {
		return err
	}
	if w.Watcher != nil && r.VM == nil {
		// Approved without asking (before the cluster's APIs were known, or
		// not through the form or the API): made anyway, it would never
		// come up, and say nothing.
		if reason := (&store.ValidationError{Fields: w.Watcher.Lacks(tv.Spec, r.Pool)}).Messages(); reason != "" {
			w.Metrics.failed("permanent")
			log.Warn("provisioning failed for good: the cluster lacks an API", "reason", reason)
			return w.Store.FailProvisioning(ctx, r.ID, reason)
		}
	}
	w.failpoint("before-create")
	made, err := k.create(ctx, w.Cluster, r, tv.Spec)
	if perm := (*PermanentError)(nil); errors.As(err, &perm) {
		w.Metrics.failed("permanent")
		log.Warn("provisioning failed for good", "reason", perm.Reason)
		return w.Store.FailProvisioning(ctx, r.ID, perm.Reason)
	}
	if err != nil {
		w.Metrics.failed("transient")
		if Transient(err) {
			reason := "Waiting for the cluster: the Kubernetes API server did not answer; Paddock keeps retrying."
			if nerr := w.Store.NoteWaiting(ctx, r.ID, reason); nerr != nil {
				log.Warn("note waiting", "err", nerr)
			}
		}
		log.Warn("provisioning failed, will retry", "err", err)
		return err
	}
	w.failpoint("after-create")
	log.Info("created", "kind", k.String(), "object", made.Namespace+"/"+made.Name, "uid", made.UID)
	recorded, err := w.Store.RecordVM(ctx, r.ID, made)
	if err != nil {
		return err
	}
	if recorded && !enqueued.IsZero() {
		w.Metrics.provisioned(r.CreatedAt, enqueued)
	}
	if w.Watcher != nil {
		k.kick(w.Watcher, made.Namespace, made.Name, r.ID)
	}
	return nil
}
