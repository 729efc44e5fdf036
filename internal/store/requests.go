package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// Actor is who caused a change: a user, or a part of Paddock ("policy",
// "provisioner", "cluster").
type Actor struct {
	UserID *int64
	Name   string
}

// UserActor returns the actor for a signed-in user.
func UserActor(u User) Actor { return Actor{UserID: &u.ID, Name: u.Login} }

// System actors.
var (
	ActorPolicy      = Actor{Name: "policy"}
	ActorProvisioner = Actor{Name: "provisioner"}
	ActorCluster     = Actor{Name: "cluster"}
)

// Request is a request for a VM with what Paddock knows of that VM.
type Request struct {
	ID              int64
	TeamID          int64
	TeamName        string
	Namespace       string
	RequesterID     int64
	RequesterLogin  string
	TemplateID      int64
	TemplateName    string
	TemplateVersion int
	Size            string
	VCPU            int
	MemoryMiB       int
	Name            string
	SSHPublicKey    string
	LeaseDays       int
	Justification   string
	State           State
	StateReason     string
	Decision        string
	Desired         Desired
	CreatedAt       time.Time
	UpdatedAt       time.Time
	ExpiresAt       time.Time
	// Pet marks a VM its owner keeps by hand: only the owner may rebuild it.
	Pet bool
	// Pool marks a request for a pool of Replicas identical VMs (a
	// VirtualMachinePool); VM is then the pool and Members its VMs.
	Pool     bool
	Replicas int
	Members  []PoolMember
	VM       *VM
	// Generation counts the changes of desired state (desired, template
	// version, replicas, a restart asked for); the provisioner acts on one
	// generation at a time.
	Generation int64
	// RestartAsked is when a restart was asked for and not yet done.
	RestartAsked *time.Time
}

// VM is Paddock's record of the VirtualMachine a request made.
type VM struct {
	Namespace string
	Name      string
	UID       string
	Status    string
	IP        string
	Message   string
	Manifest  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NewRequest is what a developer submits.
type NewRequest struct {
	TeamID         int64
	Requester      User
	Template       string
	Size           string
	Name           string
	SSHPublicKey   string
	LeaseDays      int
	Justification  string
	IdempotencyKey string
	// Replicas above 1 asks for a pool of that many identical VMs; Pool asks
	// for a pool even of one.
	Replicas int
	Pool     bool
	// ClusterLacks, when set, says what the cluster lacks to run the
	// template (as a pool when the flag is set): each problem refuses the
	// request at its field.
	ClusterLacks func(spec TemplateSpec, pool bool) []FieldError
}

// Limits on free text.
const (
	MaxJustificationLen = 2000
	MaxLeaseDays        = 365
	MaxIdempotencyKey   = 200
)

// checkStatic validates what needs no database.
func (n NewRequest) checkStatic() *ValidationError {
	v := &ValidationError{}
	if n.Template == "" {
		v.Add("template", "is required")
	}
	if n.Size == "" {
		v.Add("size", "is required")
	}
	if msg := CheckVMName(n.Name); msg != "" {
		v.Add("name", "%s", msg)
	}
	if msg := CheckSSHPublicKey(n.SSHPublicKey); msg != "" {
		v.Add("sshPublicKey", "%s", msg)
	}
	if n.LeaseDays < 1 || n.LeaseDays > MaxLeaseDays {
		v.Add("leaseDays", "must be between 1 and %d days", MaxLeaseDays)
	}
	if len(n.Justification) > MaxJustificationLen {
		v.Add("justification", "must be at most %d characters", MaxJustificationLen)
	}
	// PostgreSQL text holds neither NUL nor invalid UTF-8 (found by FuzzAPICreateRequest).
	if strings.ContainsRune(n.Justification, 0) || strings.ToValidUTF8(n.Justification, "") != n.Justification {
		v.Add("justification", "must be plain text, without NUL characters")
	}
	if len(n.IdempotencyKey) > MaxIdempotencyKey {
		v.Add("Idempotency-Key", "must be at most %d characters", MaxIdempotencyKey)
	}
	if n.Replicas < 0 || n.Replicas > MaxPoolReplicas {
		v.Add("replicas", "must be between 1 and %d VMs", MaxPoolReplicas)
	}
	return v
}

// SubmitRequest validates and stores a request. In one transaction it writes
// the request, its "submitted" event, the policy decision and, when approved,
// the provisioning job. A repeated submit with the same idempotency key
// returns the first request. Invalid input returns a *ValidationError and
// writes nothing.
func (s *Store) SubmitRequest(ctx context.Context, n NewRequest) (Request, error) {
	n.Name = strings.TrimSpace(n.Name)
	n.SSHPublicKey = strings.TrimSpace(n.SSHPublicKey)
	n.Justification = strings.TrimSpace(n.Justification)
	v := n.checkStatic()
	var id int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if n.IdempotencyKey != "" {
			err := tx.QueryRow(ctx, `SELECT id FROM requests WHERE requester_id = $1 AND idempotency_key = $2`,
				n.Requester.ID, n.IdempotencyKey).Scan(&id)
			if err == nil {
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("check idempotency key: %w", err)
			}
		}
		// The team row is not locked: concurrent submits of one team run side
		// by side, and the quota is kept by the team_usage trigger at commit.
		var team Team
		err := tx.QueryRow(ctx, `SELECT id, name, namespace, created_at FROM teams WHERE id = $1`, n.TeamID).
			Scan(&team.ID, &team.Name, &team.Namespace, &team.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			v.Add("team", "you are not in a team; ask the platform team to add you to one")
			return v
		}
		if err != nil {
			return fmt.Errorf("load team: %w", err)
		}
		var tpl Template
		if n.Template != "" {
			var why string
			tpl, why, err = requestableTemplate(ctx, tx, n.Template, team.Name)
			if err != nil {
				return err
			}
			if why != "" {
				v.Add("template", "%s", why)
			}
		}
		size, sizeOK := tpl.Spec.Size(n.Size)
		if tpl.ID != 0 && n.Size != "" && !sizeOK {
			names := make([]string, len(tpl.Spec.Sizes))
			for i, s := range tpl.Spec.Sizes {
				names[i] = s.Name
			}
			v.Add("size", "template %q has no size %q (choose one of %s)", n.Template, n.Size, strings.Join(names, ", "))
		}
		if tpl.ID != 0 && n.ClusterLacks != nil {
			v.Fields = append(v.Fields, n.ClusterLacks(tpl.Spec, n.Pool || n.Replicas > 1)...)
		}
		if len(v.Fields) > 0 {
			return v
		}
		// The quota is a hard limit: a request over it is refused, naming what
		// it would exceed, and nothing is stored. This check sees the usage
		// committed so far; when concurrent submits take the room first, the
		// commit is refused instead (below), with the same message.
		replicas := max(n.Replicas, 1)
		pool := n.Pool || replicas > 1
		quota, blockers, err := quotaCheck(ctx, tx, team.ID, UsageOf(tpl.Spec, size).Times(replicas))
		if err != nil {
			return err
		}
		if len(blockers) > 0 {
			v.Add("quota", "%s", QuotaMessage(team.Name, blockers))
			return v
		}
		rule, err := ruleFor(ctx, tx, team.ID, tpl.ID)
		if err != nil {
			return err
		}
		d := Decide(PolicyInput{Team: team, Template: tpl.Spec, Size: size, LeaseDays: n.LeaseDays, Quota: quota, Rule: rule,
			Replicas: poolReplicas(pool, replicas)})
		state := StatePendingApproval
		if d.Approve {
			state = StateApproved
		}
		cpu, mem := size.Resources()
		var key *string
		if n.IdempotencyKey != "" {
			key = &n.IdempotencyKey
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO requests (team_id, requester_id, template_id, template_version, size, vcpu, memory_mib,
				name, ssh_public_key, lease_days, justification, state, decision, idempotency_key, expires_at, pool, replicas)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now() + make_interval(days => $10), $15, $16)
			RETURNING id`,
			team.ID, n.Requester.ID, tpl.ID, tpl.Version, size.Name, cpu, mem, n.Name, n.SSHPublicKey,
			n.LeaseDays, n.Justification, state, d.String(), key, pool, replicas).Scan(&id)
		if isUniqueViolation(err, "requests_live_name") {
			v.Add("name", "team %s already has a VM named %q; choose another name", team.Name, n.Name)
			return v
		}
		if err != nil {
			return fmt.Errorf("insert request: %w", err)
		}
		actor := UserActor(n.Requester)
		what := fmt.Sprintf("%s/%s (v%d), size %s, lease %s", tpl.Name, n.Name, tpl.Version, size.Name, nouns(n.LeaseDays, "day", "days"))
		if pool {
			what += fmt.Sprintf(", pool of %d VMs", replicas)
		}
		// The history, the audit entry and the notice (sent at commit) take
		// one round trip.
		b := &pgx.Batch{}
		queueEvent(b, id, actor, "submitted", "", StatePendingApproval, what)
		queueEvent(b, id, ActorPolicy, "decision", StatePendingApproval, state, d.String())
		queueAudit(b, actor, AuditRequestSubmit, RequestTarget(id), map[string]any{
			"team": team.Name, "template": tpl.Name, "version": tpl.Version, "size": size.Name,
			"name": n.Name, "leaseDays": n.LeaseDays, "decision": string(state), "pool": pool, "replicas": replicas})
		queueNotify(b, id)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("record the submission of request %d: %w", id, err)
		}
		if d.Approve {
			return s.enqueue(ctx, tx, ReconcileJob{RequestID: id})
		}
		_, err = s.openApproval(ctx, tx, id, ApprovalRequest, 0, d.String(), actor)
		return err
	})
	var qe *QuotaError
	if errors.As(err, &qe) {
		v.Add("quota", "%s", QuotaMessage(qe.Team, qe.Blockers))
		return Request{}, v
	}
	if err != nil {
		return Request{}, err
	}
	return s.Request(ctx, id)
}

// RequestableTemplate returns the current version of the named template
// when members of team may request VMs from it now. Otherwise it returns
// why not, as the rule for the template field: SubmitRequest and the
// request form's pre-flight check ask the same question through it.
func (s *Store) RequestableTemplate(ctx context.Context, name, team string) (Template, string, error) {
	return requestableTemplate(ctx, s.pool, name, team)
}

// requestableTemplate is RequestableTemplate on a pool or a transaction. A
// template that is missing, retired or offered only to other teams gets one
// answer, so that what a developer is told reveals nothing of the templates
// other teams have.
func requestableTemplate(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, name, team string) (Template, string, error) {
	rows, _ := q.Query(ctx, templateSelect+` WHERE t.name = $1`, name)
	tpl, err := pgx.CollectExactlyOneRow(rows, scanTemplate)
	switch {
	case errors.Is(err, pgx.ErrNoRows), err == nil && (tpl.RetiredAt != nil || !tpl.Spec.AllowsTeam(team)):
		return Template{}, "does not exist, is not offered to your team, or is retired", nil
	case err != nil:
		return Template{}, "", fmt.Errorf("load template %q: %w", name, err)
	case tpl.DeprecatedAt != nil:
		// The catalog still shows the team a deprecated template, marked so.
		return Template{}, "is deprecated and takes no new requests", nil
	}
	return tpl, "", nil
}

// enqueue inserts a River job inside tx.
func (s *Store) enqueue(ctx context.Context, tx pgx.Tx, args river.JobArgs) error {
	if s.jobs == nil {
		return errors.New("store has no job client")
	}
	// InsertTx reads each job's own InsertOpts.
	_, err := s.jobs.InsertTx(ctx, tx, args, nil)
	if err != nil {
		return fmt.Errorf("enqueue %s job: %w", args.Kind(), err)
	}
	return nil
}

// NotifyChannel is the PostgreSQL channel on which the id of every changed
// request is announced, so that every replica can push it to open pages.
const NotifyChannel = "paddock_request"

func notify(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, notifySQL, NotifyChannel, strconv.FormatInt(id, 10)); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

const notifySQL = `SELECT pg_notify($1, $2)`

// queueNotify is notify as one statement of a batch.
func queueNotify(b *pgx.Batch, id int64) {
	b.Queue(notifySQL, NotifyChannel, strconv.FormatInt(id, 10))
}

const requestSelect = `
	SELECT r.id, r.team_id, t.name, t.namespace, r.requester_id, u.login, r.template_id, tp.name, r.template_version,
	       r.size, r.vcpu, r.memory_mib, r.name, r.ssh_public_key, r.lease_days, r.justification,
	       r.state, r.state_reason, r.decision, r.desired, r.created_at, r.updated_at, r.expires_at, r.pet,
	       r.pool, r.replicas, r.generation, r.restart_asked_at,
	       v.namespace, v.name, v.uid, v.status, v.ip, v.message, v.manifest, v.created_at, v.updated_at
	FROM requests r
	JOIN teams t ON t.id = r.team_id
	JOIN users u ON u.id = r.requester_id
	JOIN templates tp ON tp.id = r.template_id
	LEFT JOIN vms v ON v.request_id = r.id`

// requestListSelect is requestSelect for lists, which never show a VM's
// manifest: it reads as "" there, and the largest column of a row (a few
// KiB of YAML) is neither sent nor decoded for every row of a page.
var requestListSelect = func() string {
	q := strings.Replace(requestSelect, "v.manifest,", "'' AS manifest,", 1)
	if q == requestSelect {
		panic("store: requestSelect no longer reads v.manifest: update requestListSelect")
	}
	return q
}()

func scanRequest(row pgx.CollectableRow) (Request, error) {
	var r Request
	var vns, vname, uid, status, ip, msg, manifest *string
	var vc, vu *time.Time
	err := row.Scan(&r.ID, &r.TeamID, &r.TeamName, &r.Namespace, &r.RequesterID, &r.RequesterLogin, &r.TemplateID,
		&r.TemplateName, &r.TemplateVersion, &r.Size, &r.VCPU, &r.MemoryMiB, &r.Name, &r.SSHPublicKey, &r.LeaseDays,
		&r.Justification, &r.State, &r.StateReason, &r.Decision, &r.Desired, &r.CreatedAt, &r.UpdatedAt, &r.ExpiresAt, &r.Pet,
		&r.Pool, &r.Replicas, &r.Generation, &r.RestartAsked, &vns, &vname, &uid, &status, &ip, &msg, &manifest, &vc, &vu)
	if err != nil {
		return r, err
	}
	if vns != nil {
		r.VM = &VM{Namespace: *vns, Name: *vname, UID: *uid, Status: *status, IP: *ip, Message: *msg,
			Manifest: *manifest, CreatedAt: *vc, UpdatedAt: *vu}
	}
	return r, nil
}

// Request returns one request with its VM.
func (s *Store) Request(ctx context.Context, id int64) (Request, error) {
	rows, _ := s.pool.Query(ctx, requestSelect+` WHERE r.id = $1`, id)
	r, err := pgx.CollectExactlyOneRow(rows, scanRequest)
	if errors.Is(err, pgx.ErrNoRows) {
		return Request{}, ErrNotFound
	}
	if err != nil {
		return Request{}, fmt.Errorf("load request %d: %w", id, err)
	}
	if r.Pool {
		if r.Members, err = poolMembers(ctx, s.pool, id); err != nil {
			return Request{}, err
		}
	}
	return r, nil
}

// RequestFilter selects requests for a list page. Zero fields match everything.
type RequestFilter struct {
	TeamID      int64
	RequesterID int64
	// Live leaves out deleted and rejected requests.
	Live bool
	// Before continues a list after the request with this id (keyset paging).
	Before int64
	Limit  int
}

// Requests lists requests newest first.
func (s *Store) Requests(ctx context.Context, f RequestFilter) ([]Request, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.TeamID != 0 {
		add("r.team_id = $%d", f.TeamID)
	}
	if f.RequesterID != 0 {
		add("r.requester_id = $%d", f.RequesterID)
	}
	if f.Live {
		where = append(where, "r.state NOT IN ('deleted', 'rejected')")
	}
	if f.Before != 0 {
		add("r.id < $%d", f.Before)
	}
	q := requestSelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	q += fmt.Sprintf(" ORDER BY r.id DESC LIMIT %d", f.Limit)
	rows, _ := s.pool.Query(ctx, q, args...)
	rs, err := pgx.CollectRows(rows, scanRequest)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return rs, nil
}

// transition moves a request to state to when it is in one of from, writing
// the event and announcing the change. It reports whether anything changed;
// a request already in to, or in a state not in from, is left alone.
func transition(ctx context.Context, tx pgx.Tx, id int64, to State, actor Actor, kind, reason string, from ...State) (bool, error) {
	fromS := make([]string, len(from))
	for i, f := range from {
		fromS[i] = string(f)
	}
	var old State
	err := tx.QueryRow(ctx, `
		WITH old AS (SELECT state FROM requests WHERE id = $1 FOR UPDATE)
		UPDATE requests r SET state = $2, state_reason = $3, updated_at = now()
		FROM old WHERE r.id = $1 AND old.state <> $2 AND old.state = ANY($4)
		RETURNING old.state`, id, to, reason, fromS).Scan(&old)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("move request %d to %s: %w", id, to, err)
	}
	// The event, what a deletion clears and the notice take one round trip.
	b := &pgx.Batch{}
	queueEvent(b, id, actor, kind, old, to, reason)
	if to == StateDeleted {
		// The VM is gone: its address and status no longer mean anything.
		b.Queue(`UPDATE vms SET ip = '', status = '', updated_at = now() WHERE request_id = $1`, id)
		b.Queue(`DELETE FROM pool_members WHERE request_id = $1`, id)
	}
	queueNotify(b, id)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("record request %d's move to %s: %w", id, to, err)
	}
	return true, nil
}

// Transition is transition in its own transaction.
func (s *Store) Transition(ctx context.Context, id int64, to State, actor Actor, kind, reason string, from ...State) (bool, error) {
	var changed bool
	err := s.inTx(ctx, func(tx pgx.Tx) (err error) {
		changed, err = transition(ctx, tx, id, to, actor, kind, reason, from...)
		return err
	})
	return changed, err
}

// NoteWaiting records why an approved request is not yet provisioned (for
// example the cluster is unreachable), once per distinct reason, so the page
// can show it.
func (s *Store) NoteWaiting(ctx context.Context, id int64, reason string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE requests SET state_reason = $2, updated_at = now()
			WHERE id = $1 AND state = 'approved' AND state_reason <> $2`, id, reason)
		if err != nil {
			return fmt.Errorf("note waiting: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		if err := addEvent(ctx, tx, id, ActorProvisioner, "waiting", StateApproved, StateApproved, reason); err != nil {
			return err
		}
		return notify(ctx, tx, id)
	})
}

// RequestAction records an owner's day-2 action and enqueues the job that
// carries it out, in one transaction. It returns ErrConflict when the request
// is not in a state that allows the action.
func (s *Store) RequestAction(ctx context.Context, id int64, action Action, actor Actor) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var state State
		err := tx.QueryRow(ctx, `SELECT state FROM requests WHERE id = $1 FOR UPDATE`, id).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock request: %w", err)
		}
		if !ActionAllowed(action, state) {
			return conflictf("cannot %s a request that is %s", action, state.Label())
		}
		if err := s.Audit(ctx, tx, actor, AuditVMAction, RequestTarget(id), map[string]any{
			"action": string(action), "state": string(state)}); err != nil {
			return err
		}
		if action == ActionDelete {
			if err := closeApprovals(ctx, tx, id, actor, "the request was deleted"); err != nil {
				return err
			}
		}
		// A request with no VM yet is simply withdrawn.
		if action == ActionDelete && state == StatePendingApproval {
			_, err := transition(ctx, tx, id, StateDeleted, actor, "action", "withdrawn before a VM was created", state)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE requests SET desired = 'deleted' WHERE id = $1`, id)
			return err
		}
		desired := map[Action]Desired{ActionStart: DesiredRunning, ActionStop: DesiredStopped, ActionDelete: DesiredDeleted}[action]
		if desired != "" {
			if _, err := tx.Exec(ctx, `UPDATE requests SET desired = $2, updated_at = now() WHERE id = $1`, id, desired); err != nil {
				return fmt.Errorf("set desired state: %w", err)
			}
		}
		if action == ActionRestart {
			if _, err := tx.Exec(ctx, `UPDATE requests SET restart_asked_at = now(), updated_at = now() WHERE id = $1`, id); err != nil {
				return fmt.Errorf("ask for a restart: %w", err)
			}
		}
		if err := addEvent(ctx, tx, id, actor, "action", state, state, string(action)+" requested"); err != nil {
			return err
		}
		if err := s.reconcileLater(ctx, tx, id); err != nil {
			return err
		}
		return notify(ctx, tx, id)
	})
}
