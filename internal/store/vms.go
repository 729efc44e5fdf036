package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecordVM records the VM (or pool) the provisioner made for an approved
// request and moves the request to provisioning, in one short transaction.
// It reports false, recording nothing, when the request is no longer
// approved or is to be deleted (the provisioner then reconciles again).
func (s *Store) RecordVM(ctx context.Context, id int64, vm VM) (bool, error) {
	recorded := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var state State
		var desired Desired
		err := tx.QueryRow(ctx, `SELECT state, desired FROM requests WHERE id = $1 FOR UPDATE`, id).Scan(&state, &desired)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock request %d: %w", id, err)
		}
		if state != StateApproved || desired == DesiredDeleted {
			return nil
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO vms (request_id, namespace, name, uid, status, manifest) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (request_id) DO UPDATE SET namespace = EXCLUDED.namespace, name = EXCLUDED.name,
				uid = EXCLUDED.uid, manifest = EXCLUDED.manifest, status = EXCLUDED.status, ip = '', message = '',
				updated_at = now()`,
			id, vm.Namespace, vm.Name, vm.UID, vm.Status, vm.Manifest)
		if err != nil {
			return fmt.Errorf("record vm: %w", err)
		}
		recorded, err = transition(ctx, tx, id, StateProvisioning, ActorProvisioner, "vm_created",
			fmt.Sprintf("VirtualMachine %s/%s created", vm.Namespace, vm.Name), StateApproved)
		return err
	})
	return recorded, err
}

// FailProvisioning fails an approved request whose VM cannot be made
// (retrying cannot help); reason is written for the developer.
func (s *Store) FailProvisioning(ctx context.Context, id int64, reason string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		changed, err := transition(ctx, tx, id, StateFailed, ActorProvisioner, "state", reason, StateApproved)
		if err == nil && changed {
			err = s.announce(ctx, tx, id, StateApproved, StateFailed, reason)
		}
		return err
	})
}

// RestartDone forgets the restart asked for at asked, once done; a restart
// asked for again since is kept.
func (s *Store) RestartDone(ctx context.Context, id int64, asked time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE requests SET restart_asked_at = NULL WHERE id = $1 AND restart_asked_at = $2`, id, asked)
	if err != nil {
		return fmt.Errorf("restart of request %d done: %w", id, err)
	}
	return nil
}

// Observation is what the watcher saw of a request's VM in the cluster.
type Observation struct {
	// Gone is true when the VirtualMachine no longer exists.
	Gone    bool
	Status  string
	IP      string
	Message string
	// State is the request state the observation implies; "" leaves it as is.
	State State
	// Reason explains State in words a developer understands.
	Reason string
	// OnlyFrom, when set, limits the states the request may move to State
	// from (the watcher fails a request whose VM never came up only while
	// it is still provisioning).
	OnlyFrom []State
	// Version is the newest resourceVersion among the objects observed
	// (the API server's etcd revision), or 0 when unknown. An observation
	// older than one recorded already is stale and changes nothing: another
	// replica's cache, or a watch replaying history, lags behind.
	Version int64
	// Pool is set for an observation of a VirtualMachinePool; Members are
	// its member VMs as seen (stored, replacing the previous list).
	Pool    bool
	Members []PoolMember
	// Replicas is the number of VMs the observed pool's spec asks for (0
	// when unknown). One other than the request's, with no reconcile of the
	// request under way, was set outside Paddock (perhaps over quota):
	// Observe enqueues the request's reconcile, which scales the pool back.
	Replicas int
	// Namespace, Name and UID say which VM (or pool) was observed; for one
	// that is gone, the UID it had ("" when none was known). Anything that
	// carries a request's label can be made by hand, so an observation of
	// an object other than the one recorded for the request is refused
	// with ErrNotRecorded and changes nothing.
	Namespace, Name, UID string
}

// ErrNotRecorded is returned by Observe for an observation of an object
// other than the VM or pool recorded for the request (another namespace,
// name, kind or UID).
var ErrNotRecorded = errors.New("not the object recorded for the request")

// Watched is what Paddock recorded of the VM or pool it made for a
// request: the only object whose observations count for the request.
type Watched struct {
	Namespace, Name string
	// UID is the object's UID, "" until known.
	UID string
	// Pool is set when the object is a VirtualMachinePool.
	Pool bool
	// ProvisioningSince is when the request last began provisioning, zero
	// unless it is provisioning now.
	ProvisioningSince time.Time
}

// Recorded reports whether a VM or pool has been recorded (the request
// may still be waiting to be provisioned).
func (w Watched) Recorded() bool { return w.Name != "" }

// matches reports whether o is an observation of w: same place and kind,
// and the same UID once one is recorded. Before it is, any object there
// will do but one said to be gone, whose UID then is not w's.
func (w Watched) matches(o Observation) bool {
	if o.Namespace != w.Namespace || o.Name != w.Name || o.Pool != w.Pool {
		return false
	}
	return o.UID == w.UID || w.UID == "" && !o.Gone
}

// WatchedObject returns the VM or pool recorded for request id (zero,
// not Recorded, while there is none yet), or ErrNotFound when there is no
// such request.
func (s *Store) WatchedObject(ctx context.Context, id int64) (Watched, error) {
	return watchedObject(ctx, s.pool, id)
}

func watchedObject(ctx context.Context, q queryRower, id int64) (Watched, error) {
	w, _, err := scanWatched(q.QueryRow(ctx, watchedSelect, id), id)
	return w, err
}

// watchedSelect reads the object recorded for a request ($1) and, for
// Observe, what was last recorded of it (scanWatched).
const watchedSelect = `SELECT r.pool, v.namespace, v.name, v.uid,
		CASE WHEN r.state = 'provisioning' THEN (SELECT coalesce(max(e.at), now()) FROM events e
			WHERE e.request_id = r.id AND e.to_state = 'provisioning' AND e.from_state <> 'provisioning') END,
		v.observed_version, v.status, v.ip, v.message
	FROM requests r LEFT JOIN vms v ON v.request_id = r.id WHERE r.id = $1`

// seenVM is what the vms row holds of the last observation recorded.
type seenVM struct {
	version             int64
	status, ip, message string
}

func scanWatched(row pgx.Row, id int64) (Watched, seenVM, error) {
	var w Watched
	var seen seenVM
	var ns, name, uid, status, ip, message *string
	var since *time.Time
	var version *int64
	err := row.Scan(&w.Pool, &ns, &name, &uid, &since, &version, &status, &ip, &message)
	if errors.Is(err, pgx.ErrNoRows) {
		return Watched{}, seen, ErrNotFound
	}
	if err != nil {
		return Watched{}, seen, fmt.Errorf("recorded VM of request %d: %w", id, err)
	}
	if name != nil {
		w.Namespace, w.Name, w.UID = *ns, *name, *uid
		seen = seenVM{version: *version, status: *status, ip: *ip, message: *message}
	}
	if since != nil {
		w.ProvisioningSince = *since
	}
	return w, seen, nil
}

// Observe records what the cluster shows for a request's VM. The VM row and
// the request state change only when something differs, so a replayed or
// duplicated observation writes nothing. It returns the state the request
// moved to, or "" when it did not change. An observation of anything but
// the object recorded for the request fails with ErrNotRecorded; one made
// before anything is recorded changes nothing.
func (s *Store) Observe(ctx context.Context, id int64, o Observation) (State, error) {
	var moved State
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// record notes a transition's outcome.
		record := func(to State) func(bool, error) error {
			return func(changed bool, err error) error {
				if changed {
					moved = to
				}
				return err
			}
		}
		// One round trip takes the request's lock and then, under it (the
		// second statement has a snapshot of its own), reads what is
		// recorded: the watcher calls this for every change it sees.
		b := &pgx.Batch{}
		b.Queue(`SELECT state, desired, replicas FROM requests WHERE id = $1 FOR UPDATE`, id)
		b.Queue(watchedSelect, id)
		br := tx.SendBatch(ctx, b)
		var state State
		var desired Desired
		var replicas int
		err := br.QueryRow().Scan(&state, &desired, &replicas)
		if errors.Is(err, pgx.ErrNoRows) {
			return br.Close()
		}
		if err != nil {
			_ = br.Close()
			return fmt.Errorf("lock request %d: %w", id, err)
		}
		rec, seen, err := scanWatched(br.QueryRow(), id)
		if cerr := br.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("lock request %d: %w", id, cerr)
		}
		if err != nil {
			return err
		}
		if state.Terminal() {
			return nil
		}
		if !rec.Recorded() {
			// Nothing recorded yet: the provisioner asks for a fresh look
			// once it has recorded what it made.
			return nil
		}
		if !rec.matches(o) {
			return fmt.Errorf("request %d: %s/%s (uid %q): %w", id, o.Namespace, o.Name, o.UID, ErrNotRecorded)
		}
		if rec.UID == "" && o.UID != "" {
			// Recorded before its UID was known: from now on only this
			// object counts.
			if _, err := tx.Exec(ctx, `UPDATE vms SET uid = $2 WHERE request_id = $1`, id, o.UID); err != nil {
				return fmt.Errorf("record uid: %w", err)
			}
		}
		if o.Version > 0 && !o.Gone && o.Version < seen.version {
			return nil // stale
		}
		changedVM := false
		if !o.Gone {
			// The row cannot change under the lock: what was read decides
			// whether to write, so an observation that adds nothing writes
			// nothing, whether the VM's updated_at moves (a newer version
			// alone does not move it) and which version is recorded (an
			// unknown one, 0, keeps the recorded one).
			changedVM = o.Status != seen.status || o.IP != seen.ip || o.Message != seen.message
			if changedVM || o.Version > seen.version {
				_, err := tx.Exec(ctx, `UPDATE vms SET observed_version = $5, status = $2, ip = $3, message = $4,
						updated_at = CASE WHEN $6 THEN now() ELSE updated_at END
					WHERE request_id = $1`, id, o.Status, o.IP, o.Message, max(o.Version, seen.version), changedVM)
				if err != nil {
					return fmt.Errorf("update vm: %w", err)
				}
			}
			if o.Pool {
				changed, err := syncMembers(ctx, tx, id, o.Members)
				if err != nil {
					return err
				}
				changedVM = changedVM || changed
			}
		}
		// Approved is left out: until the provisioner records the VM it made,
		// the request belongs to the provisioner, which asks for a fresh look
		// once it has.
		live := vmStates
		// A stop or start seen while Paddock's own reconcile of a change is
		// still to come is that change's doing, or will be undone by it (the
		// newer wish): then it is an ordinary state change, not drift.
		drift := !o.Gone && (o.State == StateStopped && desired == "running" && state == StateRunning ||
			(o.State == StateRunning || o.State == StateProvisioning) && desired == "stopped" && state == StateStopped)
		if drift {
			pending, err := reconcilePending(ctx, tx, id)
			if err != nil {
				return err
			}
			drift = !pending
		}
		if o.Pool && !o.Gone && o.Replicas > 0 && o.Replicas != replicas && desired != DesiredDeleted && state != StateExpired {
			pending, err := reconcilePending(ctx, tx, id)
			if err != nil {
				return err
			}
			if !pending {
				// Or a cache behind Paddock's own scale: the reconcile then
				// finds nothing to do.
				if err := s.reconcileLater(ctx, tx, id); err != nil {
					return err
				}
			}
		}
		switch {
		case o.Gone && desired == "deleted":
			return record(StateDeleted)(transition(ctx, tx, id, StateDeleted, ActorCluster, "state", "VirtualMachine deleted", live...))
		case o.Gone:
			what := "VirtualMachine"
			if o.Pool {
				what = "VirtualMachinePool"
			}
			return record(StateDeleted)(transition(ctx, tx, id, StateDeleted, ActorCluster, "drift",
				"the "+what+" was deleted outside Paddock", live...))
		case drift:
			// Stopped or started by someone else: Paddock takes it as the new
			// desired state rather than fight it.
			what, want := "stopped", DesiredStopped
			if o.State != StateStopped {
				what, want = "started", DesiredRunning
			}
			changed, err := transition(ctx, tx, id, o.State, ActorCluster, "drift",
				"the VM was "+what+" outside Paddock", live...)
			if err == nil {
				_, err = tx.Exec(ctx, `UPDATE requests SET desired = $2 WHERE id = $1`, id, want)
			}
			return record(o.State)(changed, err)
		case state == StateExpired:
			// An expired VM stays expired, stopped or started by someone, until
			// its lease is extended.
		case o.State != "" && o.State != state:
			from := live
			if o.OnlyFrom != nil {
				from = o.OnlyFrom
			}
			changed, err := transition(ctx, tx, id, o.State, ActorCluster, "state", o.Reason, from...)
			if err == nil && changed {
				err = s.announce(ctx, tx, id, state, o.State, o.Reason)
			}
			return record(o.State)(changed, err)
		case o.Reason != "" && (o.State == state || o.State == "" && state == StateProvisioning):
			if _, err := tx.Exec(ctx, `UPDATE requests SET state_reason = $2 WHERE id = $1 AND state_reason <> $2`, id, o.Reason); err != nil {
				return fmt.Errorf("update reason: %w", err)
			}
		}
		if changedVM {
			return notify(ctx, tx, id)
		}
		return nil
	})
	return moved, err
}

// RequestsWithVM lists the requests that should have a VM in the cluster.
func (s *Store) RequestsWithVM(ctx context.Context) ([]Request, error) {
	rows, _ := s.pool.Query(ctx, requestListSelect+` WHERE r.state IN ('provisioning', 'running', 'stopped', 'failed', 'expired') AND v.request_id IS NOT NULL`)
	rs, err := pgx.CollectRows(rows, scanRequest)
	if err != nil {
		return nil, fmt.Errorf("list requests with VMs: %w", err)
	}
	return rs, nil
}

// reconcilePending reports whether request id's reconcile job waits, runs or
// retries: a change of desired state is still being carried out.
func reconcilePending(ctx context.Context, tx pgx.Tx, id int64) (bool, error) {
	var pending bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job WHERE kind = 'reconcile'
		AND args @> jsonb_build_object('request_id', $1::bigint)
		AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled'))`, id).Scan(&pending)
	if err != nil {
		return false, fmt.Errorf("reconcile of request %d pending: %w", id, err)
	}
	return pending, nil
}
