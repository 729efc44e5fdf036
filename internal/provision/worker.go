package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	virtv1 "kubevirt.io/api/core/v1"

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
	river.AddWorker(ws, &provisionWorker{w: w})
	river.AddWorker(ws, &actionWorker{w: w})
	river.AddWorker(ws, &rebuildWorker{w: w})
	river.AddWorker(ws, &scaleWorker{w: w})
	river.AddWorker(ws, &store.RolloutWorker{Store: w.Store, Log: w.Log.With("component", "rollout")})
}

// backoff retries quickly at first and never waits more than 30 s, so a
// cluster back from an outage is used within half a minute.
func backoff(attempt int) time.Time {
	d := min(time.Duration(1<<min(attempt, 5))*time.Second, 30*time.Second)
	d += time.Duration(rand.Int64N(int64(d / 4)))
	return time.Now().Add(d)
}

type provisionWorker struct {
	river.WorkerDefaults[store.ProvisionJob]
	w *Workers
}

func (p *provisionWorker) NextRetry(job *river.Job[store.ProvisionJob]) time.Time {
	return backoff(job.Attempt)
}

func (p *provisionWorker) Work(ctx context.Context, job *river.Job[store.ProvisionJob]) error {
	p.w.failpoint("before-job")
	id := job.Args.RequestID
	log := p.w.Log.With("request_id", id, "job_id", job.ID, "attempt", job.Attempt)
	return p.w.provision(ctx, id, log, job.CreatedAt)
}

// provision creates the VM of an approved request (store.Provision + Render +
// CreateVM) and asks the watcher to look at it; enqueued is when the job was
// made, for the metrics. New requests and rebuilds share it.
func (w *Workers) provision(ctx context.Context, id int64, log *slog.Logger, enqueued time.Time) error {
	p := &provisionWorker{w: w}
	var made store.VM
	var pool bool
	err := p.w.Store.Provision(ctx, id, func(ctx context.Context, r store.Request, tv store.TemplateVersion) (store.VM, error) {
		if pool = r.Pool; pool {
			var err error
			made, err = p.w.createPool(ctx, r, tv, log)
			return made, err
		}
		vm, err := Render(tv.Spec, r)
		if err != nil {
			return store.VM{}, &store.PermanentError{Reason: "The template could not be turned into a VirtualMachine: " + err.Error()}
		}
		p.w.failpoint("before-create")
		created, err := p.w.Cluster.CreateVM(ctx, vm)
		if err != nil {
			err = explainCreate(err, vm)
			if perm := (*store.PermanentError)(nil); errors.As(err, &perm) {
				p.w.Metrics.failed("permanent")
			}
			return store.VM{}, err
		}
		p.w.failpoint("after-create")
		manifest, err := Manifest(vm)
		if err != nil {
			return store.VM{}, err
		}
		made = store.VM{SubmittedAt: r.CreatedAt, Namespace: created.Namespace, Name: created.Name, UID: string(created.UID),
			Status: string(created.Status.PrintableStatus), Manifest: manifest}
		log.Info("virtual machine created", "vm", created.Namespace+"/"+created.Name, "uid", created.UID)
		return made, nil
	})
	if err != nil {
		p.w.Metrics.failed("transient")
		if Transient(err) {
			reason := "Waiting for the cluster: the Kubernetes API server did not answer; Paddock keeps retrying."
			if nerr := p.w.Store.NoteWaiting(ctx, id, reason); nerr != nil {
				log.Warn("note waiting", "err", nerr)
			}
		}
		log.Warn("provisioning failed, will retry", "err", err)
		return err
	}
	if made.Name != "" && !enqueued.IsZero() {
		p.w.Metrics.provisioned(made.SubmittedAt, enqueued)
	}
	if made.Name != "" && p.w.Watcher != nil {
		if pool {
			p.w.Watcher.KickPool(made.Namespace, made.Name, id)
		} else {
			p.w.Watcher.Kick(made.Namespace, made.Name, id)
		}
	}
	return nil
}

// createPool is provision's step for a pool request: RenderPool + CreatePool.
func (w *Workers) createPool(ctx context.Context, r store.Request, tv store.TemplateVersion, log *slog.Logger) (store.VM, error) {
	p, err := RenderPool(tv.Spec, r)
	if err != nil {
		return store.VM{}, &store.PermanentError{Reason: "The template could not be turned into a VirtualMachinePool: " + err.Error()}
	}
	w.failpoint("before-create")
	created, err := w.Cluster.CreatePool(ctx, p)
	if err != nil {
		err = explainCreatePool(err, p.Namespace, p.Name)
		if perm := (*store.PermanentError)(nil); errors.As(err, &perm) {
			w.Metrics.failed("permanent")
		}
		return store.VM{}, err
	}
	w.failpoint("after-create")
	manifest, err := PoolManifest(p)
	if err != nil {
		return store.VM{}, err
	}
	log.Info("virtual machine pool created", "pool", created.Namespace+"/"+created.Name, "uid", created.UID, "replicas", r.Replicas)
	return store.VM{SubmittedAt: r.CreatedAt, Namespace: created.Namespace, Name: created.Name, UID: string(created.UID),
		Manifest: manifest}, nil
}

// explainCreatePool is explainCreate for a VirtualMachinePool.
func explainCreatePool(err error, ns, name string) error {
	if errors.Is(err, ErrNotOurs) {
		return &store.PermanentError{Reason: fmt.Sprintf(
			"A VirtualMachinePool named %q already exists in namespace %s and was not created by Paddock for this request; Paddock leaves it alone. Request again with another name.",
			name, ns)}
	}
	err = explainCreate(err, &virtv1.VirtualMachine{})
	if perm := (*store.PermanentError)(nil); errors.As(err, &perm) {
		perm.Reason = strings.ReplaceAll(perm.Reason, "the VirtualMachine", "the VirtualMachinePool")
	}
	return err
}

// explainCreate turns a create error into a permanent failure with a reason
// for the developer, or returns it as is to be retried.
func explainCreate(err error, vm *virtv1.VirtualMachine) error {
	switch {
	case errors.Is(err, ErrNotOurs):
		return &store.PermanentError{Reason: fmt.Sprintf(
			"A VirtualMachine named %q already exists in namespace %s and was not created by Paddock for this request; Paddock leaves it alone. Request again with another name.",
			vm.Name, vm.Namespace)}
	case errors.Is(err, ErrNoNamespace):
		return &store.PermanentError{Reason: fmt.Sprintf(
			"Your team's namespace %q does not exist in the cluster. Ask the platform team to create it, then request again.", vm.Namespace)}
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return &store.PermanentError{Reason: "The cluster refused the VirtualMachine: " + apiMessage(err) + " Tell the platform team which template you used."}
	case apierrors.IsForbidden(err):
		return &store.PermanentError{Reason: "The cluster did not allow Paddock to create the VirtualMachine: " + apiMessage(err)}
	}
	return err
}

func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}

type actionWorker struct {
	river.WorkerDefaults[store.ActionJob]
	w *Workers
}

func (a *actionWorker) NextRetry(job *river.Job[store.ActionJob]) time.Time {
	return backoff(job.Attempt)
}

func (a *actionWorker) Work(ctx context.Context, job *river.Job[store.ActionJob]) error {
	id := job.Args.RequestID
	log := a.w.Log.With("request_id", id, "job_id", job.ID, "action", job.Args.Action)
	r, err := a.w.Store.Request(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ns, name := r.Namespace, r.Name
	if r.VM != nil {
		ns, name = r.VM.Namespace, r.VM.Name
	}
	rid := strconv.FormatInt(id, 10)
	c := a.w.Cluster
	switch {
	case r.State.Terminal():
		return nil
	case r.Pool:
		return a.w.poolAction(ctx, r, job.Args.Action, log)
	case r.Desired == "deleted":
		if err := c.DeleteVM(ctx, ns, name, rid); err != nil {
			if errors.Is(err, ErrNotOurs) {
				// Someone else's VM took the name; ours is gone.
				err = nil
			} else {
				return err
			}
		}
		_, err := a.w.Store.Transition(ctx, id, store.StateDeleted, store.ActorProvisioner, "state",
			"VirtualMachine and its disks deleted", store.StateApproved, store.StateProvisioning, store.StateRunning,
			store.StateStopped, store.StateFailed, store.StateExpired)
		log.Info("virtual machine deleted", "vm", ns+"/"+name)
		return err
	case r.VM == nil:
		return nil // not created yet; the provisioner applies the desired state
	case job.Args.Action == store.ActionRestart:
		err = c.Restart(ctx, ns, name, rid)
	case r.Desired == "stopped":
		err = c.SetRunStrategy(ctx, ns, name, rid, virtv1.RunStrategyHalted)
	default:
		err = c.SetRunStrategy(ctx, ns, name, rid, virtv1.RunStrategyAlways)
	}
	if apierrors.IsNotFound(err) || errors.Is(err, ErrNotOurs) {
		// The VM vanished behind Paddock's back: let the watcher record it.
		a.w.Watcher.Kick(ns, name, id)
		return nil
	}
	if err != nil {
		return err
	}
	log.Info("action applied", "vm", ns+"/"+name)
	if a.w.Watcher != nil {
		a.w.Watcher.Kick(ns, name, id)
	}
	return nil
}
