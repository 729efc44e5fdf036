package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
)

// A rollout moves the VMs of a template that are on older versions to a
// target version, in batches: each batch is rebuilt (RequestRebuild) and
// must reach running before the next one starts. A VM that fails pauses the
// rollout with the reason; the platform team fixes the cause and resumes
// (the failed VMs are rebuilt again), or cancels. Pets are skipped and
// listed. The rollout advances by RolloutJob steps, each enqueued in the
// transaction that records the previous step, so a restart of the portal
// picks it up where it was.

// RolloutState is where a rollout is.
type RolloutState string

// The states of a rollout.
const (
	RolloutRunning   RolloutState = "running"
	RolloutPaused    RolloutState = "paused"
	RolloutCancelled RolloutState = "cancelled"
	RolloutCompleted RolloutState = "completed"
)

// Active reports whether the rollout may still rebuild VMs.
func (s RolloutState) Active() bool { return s == RolloutRunning || s == RolloutPaused }

// The states of one VM in a rollout.
const (
	ItemPending    = "pending"
	ItemRebuilding = "rebuilding"
	ItemDone       = "done"
	ItemFailed     = "failed"
	ItemSkipped    = "skipped"
	ItemCancelled  = "cancelled"
)

// Limits of a rollout.
const (
	MaxRolloutBatch     = 100
	DefaultRolloutBatch = 3
)

// RolloutPoll is how often a running rollout looks at the VMs of its batch
// (a step job waits this long, then looks, then enqueues the next).
var RolloutPoll = time.Second

// Audit actions of rollouts.
const (
	AuditRolloutStart  = "rollout_start"
	AuditRolloutPause  = "rollout_pause"
	AuditRolloutResume = "rollout_resume"
	AuditRolloutCancel = "rollout_cancel"
)

// NotifyRolloutScheduled tells an owner that a rollout will rebuild their VM.
const NotifyRolloutScheduled = "rollout_scheduled"

// Rollout is a rollout, with a summary of its VMs and (from Rollout, not
// Rollouts) the VMs themselves.
type Rollout struct {
	ID            int64
	TemplateID    int64
	TemplateName  string
	TargetVersion int
	BatchSize     int
	State         RolloutState
	Reason        string
	Generation    int
	CreatedBy     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    *time.Time
	// Counts is how many of its VMs are in each item state.
	Counts map[string]int
	// Total is the VMs it rebuilds or rebuilt (not those skipped at start).
	Total int
	// Batches is the number of batches; CurrentBatch the lowest with a VM
	// not yet done, skipped or cancelled (0 when there is none).
	Batches      int
	CurrentBatch int
	Items        []RolloutItem
}

// RolloutItem is one VM of a rollout.
type RolloutItem struct {
	RequestID   int64
	Name        string
	Owner       string
	Team        string
	Position    int
	Batch       int
	FromVersion int
	State       string
	Reason      string
	StartedAt   *time.Time
	FinishedAt  *time.Time
	// What the request is now.
	RequestState State
	Version      int
	VMStatus     string
}

// Skipped lists the VMs the rollout leaves alone, with why.
func (r Rollout) Skipped() []RolloutItem {
	var out []RolloutItem
	for _, it := range r.Items {
		if it.State == ItemSkipped {
			out = append(out, it)
		}
	}
	return out
}

// RolloutJob is one step of a rollout: look at the VMs being rebuilt, and
// start the next batch when they all run. A job whose generation is not
// the rollout's does nothing (the rollout was paused or resumed since).
// The steps that follow a step are scheduled RolloutPoll later, so a
// rollout polls its batch calmly without holding a worker while it waits.
type RolloutJob struct {
	RolloutID  int64 `json:"rollout_id"`
	Generation int   `json:"generation"`
}

// Kind implements river.JobArgs.
func (RolloutJob) Kind() string { return "rollout_step" }

// InsertOpts retries a step that failed (PostgreSQL away) for a long while.
func (RolloutJob) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 100} }

// NewRollout is what the platform team asks for.
type NewRollout struct {
	Template  string
	Version   int // 0: the template's current version
	BatchSize int // 0: DefaultRolloutBatch
}

// RolloutCandidate is a VM a rollout of a template to a version would take.
type RolloutCandidate struct {
	RequestID int64
	Name      string
	Owner     string
	Team      string
	Version   int
	State     State
	Pet       bool
}

// candidates returns the live requests of a template on versions older
// than version, oldest request first.
func candidates(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, templateID int64, version int) ([]RolloutCandidate, error) {
	rows, _ := q.Query(ctx, `
		SELECT r.id, r.name, u.login, t.name, r.template_version, r.state, r.pet
		FROM requests r JOIN users u ON u.id = r.requester_id JOIN teams t ON t.id = r.team_id
		WHERE r.template_id = $1 AND r.template_version < $2 AND r.desired <> 'deleted'
		  AND r.state IN ('approved', 'provisioning', 'running', 'stopped', 'failed', 'expired')
		ORDER BY r.id`, templateID, version)
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RolloutCandidate, error) {
		var c RolloutCandidate
		err := row.Scan(&c.RequestID, &c.Name, &c.Owner, &c.Team, &c.Version, &c.State, &c.Pet)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("rollout candidates: %w", err)
	}
	return cs, nil
}

// RolloutPlan is what starting a rollout would do: the template, the target
// version and the VMs it would take.
type RolloutPlan struct {
	TemplateID     int64
	Template       string
	CurrentVersion int
	Version        int
	Candidates     []RolloutCandidate
	// Active is the id of the template's running or paused rollout, if any.
	Active int64
}

// PlanRollout returns what a rollout of a template to version (0: current)
// would take.
func (s *Store) PlanRollout(ctx context.Context, template string, version int) (RolloutPlan, error) {
	var p RolloutPlan
	var retired bool
	err := s.pool.QueryRow(ctx, `SELECT id, name, current_version, retired_at IS NOT NULL FROM templates WHERE name = $1`, template).
		Scan(&p.TemplateID, &p.Template, &p.CurrentVersion, &retired)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("load template %s: %w", template, err)
	}
	if version == 0 {
		version = p.CurrentVersion
	}
	p.Version = version
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM rollouts WHERE template_id = $1 AND state IN ('running', 'paused')`,
		p.TemplateID).Scan(&p.Active); err != nil {
		return p, fmt.Errorf("active rollout of %s: %w", template, err)
	}
	p.Candidates, err = candidates(ctx, s.pool, p.TemplateID, version)
	return p, err
}

// StartRollout starts rolling the VMs of a template forward to a version.
// In one transaction it records the rollout and its VMs in batches (pets
// skipped, with why), tells each owner which batch will rebuild their VM
// (an event on the request and a notification), and enqueues the first
// step. It returns a *ValidationError naming the field for a template,
// version or batch size that does not fit, or when there is nothing to roll
// out, and an error wrapping ErrConflict when the template has a rollout
// under way.
func (s *Store) StartRollout(ctx context.Context, n NewRollout, actor Actor) (int64, error) {
	v := &ValidationError{}
	if n.BatchSize == 0 {
		n.BatchSize = DefaultRolloutBatch
	}
	if n.BatchSize < 1 || n.BatchSize > MaxRolloutBatch {
		v.Add("batch_size", "batch size must be between 1 and %d VMs", MaxRolloutBatch)
	}
	if strings.TrimSpace(n.Template) == "" {
		v.Add("template", "choose a template")
	}
	if err := v.OrNil(); err != nil {
		return 0, err
	}
	var id int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var tplID int64
		var current int
		var retired bool
		err := tx.QueryRow(ctx, `SELECT id, current_version, retired_at IS NOT NULL FROM templates WHERE name = $1 FOR UPDATE`, n.Template).
			Scan(&tplID, &current, &retired)
		if errors.Is(err, pgx.ErrNoRows) {
			v.Add("template", "there is no template %q", n.Template)
			return v
		}
		if err != nil {
			return fmt.Errorf("lock template %s: %w", n.Template, err)
		}
		if retired {
			v.Add("template", "template %s is retired; it builds no more VMs", n.Template)
			return v
		}
		version := n.Version
		if version == 0 {
			version = current
		}
		if version < 1 || version > current {
			v.Add("version", "template %s has no version %d (the latest is v%d)", n.Template, version, current)
			return v
		}
		if msg, err := withdrawnRefusal(ctx, tx, tplID, version); err != nil {
			return err
		} else if msg != "" {
			v.Add("version", "%s", msg)
			return v
		}
		var active int64
		err = tx.QueryRow(ctx, `SELECT id FROM rollouts WHERE template_id = $1 AND state IN ('running', 'paused')`, tplID).Scan(&active)
		if err == nil {
			return conflictf("rollout #%d of %s is under way; cancel it before starting another", active, n.Template)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("active rollout of %s: %w", n.Template, err)
		}
		cs, err := candidates(ctx, tx, tplID, version)
		if err != nil {
			return err
		}
		cattle := 0
		for _, c := range cs {
			if !c.Pet {
				cattle++
			}
		}
		if cattle == 0 {
			msg := fmt.Sprintf("no VM of %s is on a version older than v%d", n.Template, version)
			if len(cs) > 0 {
				msg = fmt.Sprintf("every VM of %s on a version older than v%d is a pet (%d); only their owners rebuild them", n.Template, version, len(cs))
			}
			v.Add("version", "%s", msg)
			return v
		}
		err = tx.QueryRow(ctx, `INSERT INTO rollouts (template_id, target_version, batch_size, state, created_by, created_by_login)
			VALUES ($1, $2, $3, 'running', $4, $5) RETURNING id`, tplID, version, n.BatchSize, actor.UserID, actor.Name).Scan(&id)
		if err != nil {
			return fmt.Errorf("record rollout: %w", err)
		}
		batches := (cattle + n.BatchSize - 1) / n.BatchSize
		k := 0
		for pos, c := range cs {
			batch, state, reason := 0, ItemSkipped, ""
			if c.Pet {
				reason = fmt.Sprintf("a pet: only its owner, %s, rebuilds it", c.Owner)
			} else {
				batch, state = k/n.BatchSize+1, ItemPending
				k++
			}
			if _, err := tx.Exec(ctx, `INSERT INTO rollout_items (rollout_id, request_id, position, batch, from_version, state, reason)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, c.RequestID, pos+1, batch, c.Version, state, reason); err != nil {
				return fmt.Errorf("record rollout item: %w", err)
			}
			if c.Pet {
				continue
			}
			text := fmt.Sprintf("Rollout #%d will rebuild %s (owner %s) from %s v%d to v%d in batch %d of %d; "+
				"the VM is deleted and made again. Mark it as a pet before then to keep it as it is.",
				id, c.Name, c.Owner, n.Template, c.Version, version, batch, batches)
			if err := addEvent(ctx, tx, c.RequestID, actor, "rollout", c.State, c.State, text); err != nil {
				return err
			}
			if err := s.addNotification(ctx, tx, NotifyRolloutScheduled, c.RequestID, text); err != nil {
				return err
			}
			if err := notify(ctx, tx, c.RequestID); err != nil {
				return err
			}
		}
		if err := s.Audit(ctx, tx, actor, AuditRolloutStart, RolloutTarget(id), map[string]any{
			"template": n.Template, "version": version, "batch_size": n.BatchSize, "vms": cattle, "skipped": len(cs) - cattle}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, RolloutJob{RolloutID: id, Generation: 1})
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.ConstraintName == "rollouts_one_active" {
			return 0, conflictf("another rollout of %s started at the same moment", n.Template)
		}
		return 0, err
	}
	return id, nil
}

// RolloutTarget is the audit target naming a rollout.
func RolloutTarget(id int64) string { return "rollout:" + strconv.FormatInt(id, 10) }

// Rollout returns one rollout with its VMs in order.
func (s *Store) Rollout(ctx context.Context, id int64) (Rollout, error) {
	rs, err := s.rollouts(ctx, `WHERE ro.id = $1`, id)
	if err != nil {
		return Rollout{}, err
	}
	if len(rs) == 0 {
		return Rollout{}, ErrNotFound
	}
	r := rs[0]
	rows, _ := s.pool.Query(ctx, `
		SELECT i.request_id, r.name, u.login, t.name, i.position, i.batch, i.from_version, i.state, i.reason,
		       i.started_at, i.finished_at, r.state, r.template_version, coalesce(v.status, '')
		FROM rollout_items i
		JOIN requests r ON r.id = i.request_id
		JOIN users u ON u.id = r.requester_id
		JOIN teams t ON t.id = r.team_id
		LEFT JOIN vms v ON v.request_id = r.id
		WHERE i.rollout_id = $1 ORDER BY i.position`, id)
	r.Items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (RolloutItem, error) {
		var it RolloutItem
		err := row.Scan(&it.RequestID, &it.Name, &it.Owner, &it.Team, &it.Position, &it.Batch, &it.FromVersion,
			&it.State, &it.Reason, &it.StartedAt, &it.FinishedAt, &it.RequestState, &it.Version, &it.VMStatus)
		return it, err
	})
	if err != nil {
		return r, fmt.Errorf("items of rollout %d: %w", id, err)
	}
	return r, nil
}

// Rollouts lists the latest rollouts, newest first, without their VMs.
func (s *Store) Rollouts(ctx context.Context, limit int) ([]Rollout, error) {
	return s.rollouts(ctx, `ORDER BY ro.created_at DESC, ro.id DESC LIMIT $1`, limit)
}

// RolloutNotice is what a VM's owner is told of a rollout that will
// still rebuild the VM.
type RolloutNotice struct {
	RolloutID    int64
	Template     string
	Version      int
	State        RolloutState
	ItemState    string
	Batch        int
	Batches      int
	CurrentBatch int
}

// UpcomingRollout returns the running or paused rollout that will still
// rebuild a request's VM (pending, being rebuilt, or failed in it), or nil.
func (s *Store) UpcomingRollout(ctx context.Context, requestID int64) (*RolloutNotice, error) {
	var n RolloutNotice
	err := s.pool.QueryRow(ctx, `
		SELECT ro.id, tp.name, ro.target_version, ro.state, i.state, i.batch,
		       (SELECT max(batch) FROM rollout_items WHERE rollout_id = ro.id),
		       (SELECT coalesce(min(batch), 0) FROM rollout_items
		        WHERE rollout_id = ro.id AND batch > 0 AND state IN ('pending', 'rebuilding', 'failed'))
		FROM rollout_items i JOIN rollouts ro ON ro.id = i.rollout_id JOIN templates tp ON tp.id = ro.template_id
		WHERE i.request_id = $1 AND ro.state IN ('running', 'paused') AND i.state IN ('pending', 'rebuilding', 'failed')
		ORDER BY ro.id DESC LIMIT 1`, requestID).
		Scan(&n.RolloutID, &n.Template, &n.Version, &n.State, &n.ItemState, &n.Batch, &n.Batches, &n.CurrentBatch)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("upcoming rollout of request %d: %w", requestID, err)
	}
	return &n, nil
}

func (s *Store) rollouts(ctx context.Context, where string, args ...any) ([]Rollout, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT ro.id, ro.template_id, tp.name, ro.target_version, ro.batch_size, ro.state, ro.reason, ro.generation,
		       ro.created_by_login, ro.created_at, ro.updated_at, ro.finished_at,
		       (SELECT coalesce(jsonb_object_agg(state, n), '{}') FROM
		          (SELECT state, count(*) AS n FROM rollout_items WHERE rollout_id = ro.id GROUP BY state) c),
		       s.total, s.batches, s.current
		FROM rollouts ro JOIN templates tp ON tp.id = ro.template_id,
		LATERAL (SELECT count(*) FILTER (WHERE batch > 0) AS total, coalesce(max(batch), 0) AS batches,
		                coalesce(min(batch) FILTER (WHERE batch > 0 AND state IN ('pending', 'rebuilding', 'failed')), 0) AS current
		         FROM rollout_items WHERE rollout_id = ro.id) s `+where, args...)
	rs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Rollout, error) {
		var r Rollout
		err := row.Scan(&r.ID, &r.TemplateID, &r.TemplateName, &r.TargetVersion, &r.BatchSize, &r.State, &r.Reason,
			&r.Generation, &r.CreatedBy, &r.CreatedAt, &r.UpdatedAt, &r.FinishedAt, &r.Counts, &r.Total, &r.Batches, &r.CurrentBatch)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("rollouts: %w", err)
	}
	return rs, nil
}

// PauseRollout pauses a running rollout: VMs being rebuilt finish, no new
// batch starts.
func (s *Store) PauseRollout(ctx context.Context, id int64, actor Actor) error {
	return s.changeRollout(ctx, id, actor, AuditRolloutPause, func(tx pgx.Tx, state RolloutState) (RolloutState, string, error) {
		if state != RolloutRunning {
			return "", "", conflictf("rollout #%d is %s, not running", id, state)
		}
		return RolloutPaused, "paused by " + actor.Name, nil
	})
}

// ResumeRollout resumes a paused rollout. VMs that failed are rebuilt again
// first: the platform team resumes once it has fixed the cause.
func (s *Store) ResumeRollout(ctx context.Context, id int64, actor Actor) error {
	return s.changeRollout(ctx, id, actor, AuditRolloutResume, func(tx pgx.Tx, state RolloutState) (RolloutState, string, error) {
		if state != RolloutPaused {
			return "", "", conflictf("rollout #%d is %s, not paused", id, state)
		}
		if _, err := tx.Exec(ctx, `UPDATE rollout_items SET state = 'pending', started_at = NULL, finished_at = NULL,
			reason = 'failed before: ' || reason WHERE rollout_id = $1 AND state = 'failed'`, id); err != nil {
			return "", "", fmt.Errorf("retry failed VMs of rollout %d: %w", id, err)
		}
		return RolloutRunning, "", nil
	})
}

// CancelRollout stops a rollout for good: VMs being rebuilt finish, the
// ones not yet rebuilt stay on their version.
func (s *Store) CancelRollout(ctx context.Context, id int64, actor Actor) error {
	return s.changeRollout(ctx, id, actor, AuditRolloutCancel, func(tx pgx.Tx, state RolloutState) (RolloutState, string, error) {
		if !state.Active() {
			return "", "", conflictf("rollout #%d is %s already", id, state)
		}
		if _, err := tx.Exec(ctx, `UPDATE rollout_items SET state = 'cancelled', reason = 'not rebuilt: the rollout was cancelled',
			finished_at = now() WHERE rollout_id = $1 AND state IN ('pending', 'failed')`, id); err != nil {
			return "", "", fmt.Errorf("cancel VMs of rollout %d: %w", id, err)
		}
		return RolloutCancelled, "cancelled by " + actor.Name, nil
	})
}

// changeRollout moves a rollout to the state decide returns, bumping its
// generation so that step jobs of the old one stop, and enqueues a step
// when it runs again.
func (s *Store) changeRollout(ctx context.Context, id int64, actor Actor, action string,
	decide func(tx pgx.Tx, state RolloutState) (RolloutState, string, error)) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var state RolloutState
		err := tx.QueryRow(ctx, `SELECT state FROM rollouts WHERE id = $1 FOR UPDATE`, id).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock rollout %d: %w", id, err)
		}
		to, reason, err := decide(tx, state)
		if err != nil {
			return err
		}
		var gen int
		err = tx.QueryRow(ctx, `UPDATE rollouts SET state = $2, reason = $3, generation = generation + 1, updated_at = now(),
			finished_at = CASE WHEN $2 IN ('cancelled', 'completed') THEN now() END
			WHERE id = $1 RETURNING generation`, id, to, reason).Scan(&gen)
		if err != nil {
			return fmt.Errorf("update rollout %d: %w", id, err)
		}
		if err := s.Audit(ctx, tx, actor, action, RolloutTarget(id), map[string]any{"from": string(state), "to": string(to)}); err != nil {
			return err
		}
		if to == RolloutRunning {
			return s.enqueue(ctx, tx, RolloutJob{RolloutID: id, Generation: gen})
		}
		return nil
	})
}

// RolloutView is what one step of a rollout decides from, read with the
// rollout row locked: its target version, how many batches it has, and its
// VMs that are still pending or being rebuilt, in rollout order.
type RolloutView struct {
	Target  int
	Batches int
	Items   []RolloutStepItem
}

// RolloutStepItem is one VM of a rollout as a step sees it: the item's own
// state beside its request's.
type RolloutStepItem struct {
	RequestID   int64
	Name, Owner string
	Batch       int
	State       string // ItemPending or ItemRebuilding
	Request     State
	Reason      string // the request's state reason
	Desired     Desired
	Version     int // the request's template version
	Attempts    int // rebuilds the rollout has started for it
	Pet         bool
}

// RolloutStep is what a step decided (provision.PlanRolloutStep), applied by
// StepRollout in the transaction that read the RolloutView: items settled,
// then either a pause, the completion, or the rebuilds of a batch and the
// next step scheduled.
type RolloutStep struct {
	Settle   []RolloutOutcome
	Pause    string // pause the rollout with this reason; nothing more
	Complete bool
	Batch    int     // the batch Rebuild starts, for the audit trail
	Rebuild  []int64 // requests to rebuild now, each on its own
	Did      string  // a word for the log
}

// RolloutOutcome is the new state of one item of a rollout, and why.
type RolloutOutcome struct {
	RequestID     int64
	State, Reason string
}

// StepRollout advances a running rollout by one step, in one transaction
// with the rollout row locked: plan decides from the rollout's open items
// what happens (it does no I/O); StepRollout records it, rebuilds the VMs of
// a new batch each inside a savepoint, and, while the rollout still runs,
// schedules the next step RolloutPoll later in the same transaction. It
// returns the step's word for the log, or "stale" when the job's generation
// is not the rollout's (the step already ran, or the rollout was paused).
func (s *Store) StepRollout(ctx context.Context, id int64, generation int, plan func(RolloutView) RolloutStep) (string, error) {
	var did string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			state       RolloutState
			gen         int
			createdBy   string
			createdByID *int64
		)
		var v RolloutView
		err := tx.QueryRow(ctx, `SELECT state, generation, target_version, created_by, created_by_login,
			(SELECT coalesce(max(batch), 0) FROM rollout_items WHERE rollout_id = $1)
			FROM rollouts WHERE id = $1 FOR UPDATE`, id).
			Scan(&state, &gen, &v.Target, &createdByID, &createdBy, &v.Batches)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock rollout %d: %w", id, err)
		}
		if state != RolloutRunning || gen != generation {
			did = "stale"
			return nil
		}
		rows, _ := tx.Query(ctx, `
			SELECT i.request_id, r.name, u.login, i.batch, i.state, r.state, r.state_reason, r.desired, r.template_version, i.attempts, r.pet
			FROM rollout_items i JOIN requests r ON r.id = i.request_id JOIN users u ON u.id = r.requester_id
			WHERE i.rollout_id = $1 AND i.state IN ('pending', 'rebuilding') ORDER BY i.position`, id)
		v.Items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (RolloutStepItem, error) {
			var it RolloutStepItem
			err := row.Scan(&it.RequestID, &it.Name, &it.Owner, &it.Batch, &it.State, &it.Request, &it.Reason,
				&it.Desired, &it.Version, &it.Attempts, &it.Pet)
			return it, err
		})
		if err != nil {
			return fmt.Errorf("items of rollout %d: %w", id, err)
		}

		step := plan(v)
		did = step.Did
		setItem := func(requestID int64, st, reason string) error {
			_, err := tx.Exec(ctx, `UPDATE rollout_items SET state = $3, reason = $4,
				started_at = CASE WHEN $3 = 'rebuilding' THEN now() ELSE started_at END,
				attempts = attempts + CASE WHEN $3 = 'rebuilding' THEN 1 ELSE 0 END,
				finished_at = CASE WHEN $3 IN ('done', 'failed', 'skipped') THEN now() END
				WHERE rollout_id = $1 AND request_id = $2`, id, requestID, st, reason)
			if err != nil {
				return fmt.Errorf("update rollout %d item %d: %w", id, requestID, err)
			}
			return nil
		}
		for _, o := range step.Settle {
			if err := setItem(o.RequestID, o.State, o.Reason); err != nil {
				return err
			}
		}
		switch {
		case step.Pause != "":
			if _, err := tx.Exec(ctx, `UPDATE rollouts SET state = 'paused', reason = $2, generation = generation + 1,
				updated_at = now() WHERE id = $1`, id, step.Pause); err != nil {
				return fmt.Errorf("pause rollout %d: %w", id, err)
			}
			return nil
		case step.Complete:
			if _, err := tx.Exec(ctx, `UPDATE rollouts SET state = 'completed', reason = '', generation = generation + 1,
				updated_at = now(), finished_at = now() WHERE id = $1`, id); err != nil {
				return fmt.Errorf("complete rollout %d: %w", id, err)
			}
			return nil
		}
		actor := Actor{UserID: createdByID, Name: createdBy}
		pausedNow := false
		for _, requestID := range step.Rebuild {
			failed, err := s.rolloutRebuild(ctx, tx, id, requestID, v.Target, actor,
				fmt.Sprintf("rollout #%d, batch %d of %d", id, step.Batch, v.Batches), setItem)
			if err != nil {
				return err
			}
			pausedNow = pausedNow || failed
		}
		if pausedNow {
			did += ", paused: a VM cannot be rebuilt"
			return nil
		}
		if len(step.Settle) > 0 || len(step.Rebuild) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE rollouts SET updated_at = now() WHERE id = $1`, id); err != nil {
				return fmt.Errorf("touch rollout %d: %w", id, err)
			}
		}
		// Each step hands over to exactly one next step: the generation
		// moves on with it, so a step that runs twice (its process died
		// after committing) finds itself stale the second time.
		var next int
		if err := tx.QueryRow(ctx, `UPDATE rollouts SET generation = generation + 1 WHERE id = $1 RETURNING generation`,
			id).Scan(&next); err != nil {
			return fmt.Errorf("advance rollout %d: %w", id, err)
		}
		_, err = s.jobs.InsertTx(ctx, tx, RolloutJob{RolloutID: id, Generation: next},
			&river.InsertOpts{ScheduledAt: time.Now().Add(RolloutPoll)})
		if err != nil {
			return fmt.Errorf("enqueue next step of rollout %d: %w", id, err)
		}
		return nil
	})
	return did, err
}

// rolloutRebuild rebuilds one VM of a rollout inside a savepoint, so that a
// VM that cannot be rebuilt (its size gone from the new version, the quota)
// fails on its own with the reason and pauses the rollout (failed is true);
// a VM in a state that does not allow it is skipped with the reason.
func (s *Store) rolloutRebuild(ctx context.Context, tx pgx.Tx, rolloutID, requestID int64, version int, actor Actor, via string,
	setItem func(int64, string, string) error) (failed bool, err error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("savepoint: %w", err)
	}
	_, err = s.rebuildTx(ctx, sp, requestID, rebuildArgs{version: version, actor: actor, via: via, older: true})
	if err == nil {
		if err := sp.Commit(ctx); err != nil {
			return false, fmt.Errorf("release savepoint: %w", err)
		}
		return false, setItem(requestID, ItemRebuilding, "")
	}
	_ = sp.Rollback(ctx)
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		msgs := make([]string, len(verr.Fields))
		for i, f := range verr.Fields {
			msgs[i] = f.Message
		}
		reason := strings.Join(msgs, "; ")
		if err := setItem(requestID, ItemFailed, reason); err != nil {
			return false, err
		}
		_, err := tx.Exec(ctx, `UPDATE rollouts SET state = 'paused', generation = generation + 1, updated_at = now(),
			reason = $2 WHERE id = $1`, rolloutID, fmt.Sprintf("Paused: request #%d cannot be rebuilt: %s. Fix the cause, then resume: failed VMs are tried again.",
			requestID, reason))
		if err != nil {
			return false, fmt.Errorf("pause rollout %d: %w", rolloutID, err)
		}
		return true, nil
	case errors.Is(err, ErrConflict):
		reason, _ := ConflictReason(err)
		return false, setItem(requestID, ItemSkipped, reason)
	}
	return false, err
}
