package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// ActorLease is Paddock's lease keeper, the actor of reminders, expiry and
// deletion after the grace period.
var ActorLease = Actor{Name: "lease"}

// Lease reminder points before expiry.
const (
	LeaseWarnFirst  = 72 * time.Hour
	LeaseWarnSecond = 24 * time.Hour
)

// DefaultLeaseGrace is how long an expired (stopped) VM is kept before it is
// deleted, unless configured otherwise.
const DefaultLeaseGrace = 72 * time.Hour

// LeaseSweepJob runs the lease keeper: reminders, expiry and deletion after
// the grace period. It is a River periodic job; each run looks at the
// database afresh, so a run missed during a restart is made up by the next.
type LeaseSweepJob struct{}

// Kind implements river.JobArgs.
func (LeaseSweepJob) Kind() string { return "lease_sweep" }

// InsertOpts: a failed sweep is not retried, the next one comes within minutes.
func (LeaseSweepJob) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 1} }

// Extension is the outcome of asking for a longer lease.
type Extension struct {
	// Extended is true when the lease was extended at once; otherwise the
	// extension waits in the approval queue as ApprovalID.
	Extended   bool
	ExpiresAt  time.Time
	ApprovalID int64
	// Reason says why the extension needs approval.
	Reason string
}

// ExtendLease extends a request's lease by days, counted from its current
// expiry (or from now, for an expired lease). Within policy — the new expiry
// at most the template's maximum lease from now — it takes effect at once
// and an expired VM is started again; beyond it, it becomes an approval.
func (s *Store) ExtendLease(ctx context.Context, id int64, days int, by User, now time.Time) (Extension, error) {
	if days < 1 || days > MaxLeaseDays {
		v := &ValidationError{}
		v.Add("days", "must be between 1 and %d days", MaxLeaseDays)
		return Extension{}, v
	}
	actor := UserActor(by)
	var ext Extension
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var state State
		var desired string
		var expires time.Time
		var tplID int64
		var tplVersion int
		err := tx.QueryRow(ctx, `SELECT state, desired, expires_at, template_id, template_version
			FROM requests WHERE id = $1 FOR UPDATE`, id).Scan(&state, &desired, &expires, &tplID, &tplVersion)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock request %d: %w", id, err)
		}
		if !inLease(state) && state != StateExpired || desired == "deleted" {
			what := state.Label()
			if desired == "deleted" && !state.Terminal() {
				what = "being deleted"
			}
			return conflictf("cannot extend the lease of a request that is %s", what)
		}
		spec, err := specTx(ctx, tx, tplID, tplVersion)
		if err != nil {
			return err
		}
		base := expires
		if now.After(base) {
			base = now
		}
		newExp := base.Add(time.Duration(days) * 24 * time.Hour)
		limit := now.Add(time.Duration(spec.MaxLeaseDays) * 24 * time.Hour)
		if !newExp.After(limit) {
			ext.Extended = true
			ext.ExpiresAt, err = s.extendTx(ctx, tx, id, state, days, actor, now, "")
			return err
		}
		ext.Reason = fmt.Sprintf("extending by %s to %s goes beyond template %s's maximum lease of %s from now",
			nouns(days, "day", "days"), fmtUTC(newExp), spec.Name, nouns(spec.MaxLeaseDays, "day", "days"))
		ext.ApprovalID, err = s.openApproval(ctx, tx, id, ApprovalExtension, days, ext.Reason, actor)
		if err != nil {
			return err
		}
		if err := addEvent(ctx, tx, id, actor, "extension_requested", state, state, "needs approval: "+ext.Reason); err != nil {
			return err
		}
		return notify(ctx, tx, id)
	})
	return ext, err
}

// extendTx moves a locked request's expiry by days from max(expiry, now),
// records it, and brings an expired request back: its VM is started again
// (or, if it never got one, provisioned).
func (s *Store) extendTx(ctx context.Context, tx pgx.Tx, id int64, state State, days int, actor Actor, now time.Time, why string) (time.Time, error) {
	var exp time.Time
	err := tx.QueryRow(ctx, `UPDATE requests SET expires_at = greatest(expires_at, $2) + make_interval(days => $3), updated_at = now()
		WHERE id = $1 RETURNING expires_at`, id, now, days).Scan(&exp)
	if err != nil {
		return exp, fmt.Errorf("extend lease: %w", err)
	}
	if err := addEvent(ctx, tx, id, actor, "lease_extended", state, state,
		fmt.Sprintf("lease extended by %s to %s%s", nouns(days, "day", "days"), fmtUTC(exp), why)); err != nil {
		return exp, err
	}
	if state == StateExpired {
		var hasVM bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM vms WHERE request_id = $1)`, id).Scan(&hasVM); err != nil {
			return exp, fmt.Errorf("find vm: %w", err)
		}
		if hasVM {
			if _, err := tx.Exec(ctx, `UPDATE requests SET desired = 'running' WHERE id = $1`, id); err != nil {
				return exp, fmt.Errorf("set desired state: %w", err)
			}
			if _, err := transition(ctx, tx, id, StateStopped, actor, "lease_restored",
				"the lease was extended: starting the VM again", StateExpired); err != nil {
				return exp, err
			}
			if err := s.reconcileLater(ctx, tx, id); err != nil {
				return exp, err
			}
		} else {
			if _, err := tx.Exec(ctx, `UPDATE requests SET desired = 'running' WHERE id = $1`, id); err != nil {
				return exp, fmt.Errorf("set desired state: %w", err)
			}
			if _, err := transition(ctx, tx, id, StateApproved, actor, "lease_restored",
				"the lease was extended: creating the VM", StateExpired); err != nil {
				return exp, err
			}
			if err := s.reconcileLater(ctx, tx, id); err != nil {
				return exp, err
			}
		}
	}
	return exp, notify(ctx, tx, id)
}

// LeaseSweep counts what one run of the lease keeper did.
type LeaseSweep struct {
	Warned  int
	Expired int
	Deleted int
}

// SweepLeases does every lease step that is due at now: reminders 3 days
// and 1 day before expiry, expiry (the VM is stopped), and deletion once an
// expired VM has been stopped for grace. Each request is handled in its own
// transaction with its row locked, and each step is recorded so that it
// happens once however often the sweep runs. now is a parameter so that
// tests can move the clock.
func (s *Store) SweepLeases(ctx context.Context, now time.Time, grace time.Duration) (LeaseSweep, error) {
	var sw LeaseSweep
	rows, _ := s.pool.Query(ctx, `
		SELECT r.id FROM requests r
		WHERE r.state = ANY($3) AND r.desired <> 'deleted' AND (
			r.expires_at <= $1::timestamptz
			OR r.expires_at <= $1 + interval '1 day' AND NOT EXISTS (SELECT 1 FROM lease_notices n
				WHERE n.request_id = r.id AND n.kind = '1d' AND n.expires_at = r.expires_at)
			OR r.expires_at <= $1 + interval '3 days' AND r.expires_at > $1 + interval '1 day' AND NOT EXISTS (
				SELECT 1 FROM lease_notices n WHERE n.request_id = r.id AND n.kind = '3d' AND n.expires_at = r.expires_at))
		OR r.state = 'expired' AND r.desired <> 'deleted' AND r.expires_at + $2::interval <= $1
		ORDER BY r.expires_at LIMIT 1000`, now, grace, leaseStates)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return sw, fmt.Errorf("find due leases: %w", err)
	}
	var errs []error
	for _, id := range ids {
		step, err := s.leaseStep(ctx, id, now, grace)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch step {
		case "warned":
			sw.Warned++
		case "expired":
			sw.Expired++
		case "deleted":
			sw.Deleted++
		}
	}
	return sw, errors.Join(errs...)
}

// leaseStep does the one lease step due for a request, if any, and names it.
func (s *Store) leaseStep(ctx context.Context, id int64, now time.Time, grace time.Duration) (string, error) {
	var step string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		step = ""
		var state State
		var desired string
		var expires time.Time
		err := tx.QueryRow(ctx, `SELECT state, desired, expires_at FROM requests WHERE id = $1 FOR UPDATE`, id).
			Scan(&state, &desired, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock request %d: %w", id, err)
		}
		if desired == "deleted" {
			return nil // on its way out already
		}
		deleteAt := expires.Add(grace)
		switch {
		case inLease(state) && !expires.After(now):
			step = "expired"
			if _, err := tx.Exec(ctx, `UPDATE requests SET desired = 'stopped' WHERE id = $1`, id); err != nil {
				return fmt.Errorf("set desired state: %w", err)
			}
			if _, err := transition(ctx, tx, id, StateExpired, ActorLease, "lease_expired",
				fmt.Sprintf("The lease ended at %s: the VM is stopped (runStrategy: Halted) and will be deleted at %s unless the lease is extended.",
					fmtUTC(expires), fmtUTC(deleteAt)), leaseStates...); err != nil {
				return err
			}
			if err := s.reconcileLater(ctx, tx, id); err != nil {
				return err
			}
			return s.addNotification(ctx, tx, NotifyVMExpired, id, fmt.Sprintf(
				"The lease ended: the VM is stopped and will be deleted at %s unless the lease is extended.", fmtUTC(deleteAt)))
		case state == StateExpired && !deleteAt.After(now):
			step = "deleted"
			if _, err := tx.Exec(ctx, `UPDATE requests SET desired = 'deleted', updated_at = now() WHERE id = $1`, id); err != nil {
				return fmt.Errorf("set desired state: %w", err)
			}
			if err := closeApprovals(ctx, tx, id, ActorLease, "the VM was deleted after its lease ended"); err != nil {
				return err
			}
			if err := addEvent(ctx, tx, id, ActorLease, "lease_delete", state, state, fmt.Sprintf(
				"The grace period of %s after the lease ended is over: deleting the VM and its disks.", graceWords(grace))); err != nil {
				return err
			}
			if err := s.reconcileLater(ctx, tx, id); err != nil {
				return err
			}
			return notify(ctx, tx, id)
		case inLease(state) && !expires.After(now.Add(LeaseWarnSecond)):
			return s.leaseNotice(ctx, tx, id, state, "1d", expires, &step)
		case inLease(state) && !expires.After(now.Add(LeaseWarnFirst)):
			return s.leaseNotice(ctx, tx, id, state, "3d", expires, &step)
		}
		return nil
	})
	return step, err
}

// leaseNotice sends one reminder for the current expiry, once.
func (s *Store) leaseNotice(ctx context.Context, tx pgx.Tx, id int64, state State, kind string, expires time.Time, step *string) error {
	tag, err := tx.Exec(ctx, `INSERT INTO lease_notices (request_id, kind, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, id, kind, expires)
	if err != nil {
		return fmt.Errorf("record lease notice: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	*step = "warned"
	when := map[string]string{"3d": "in 3 days", "1d": "within a day"}[kind]
	msg := fmt.Sprintf("The lease ends %s, at %s; the VM will then be stopped. Extend the lease to keep it.", when, fmtUTC(expires))
	if err := addEvent(ctx, tx, id, ActorLease, "lease_warning", state, state, msg); err != nil {
		return err
	}
	if err := s.addNotification(ctx, tx, NotifyLeaseExpiring, id, msg); err != nil {
		return err
	}
	return notify(ctx, tx, id)
}

func graceWords(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return nouns(int(d/(24*time.Hour)), "day", "days")
	}
	return d.String()
}
