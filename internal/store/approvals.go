package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ApprovalKind says what a person is asked to decide.
type ApprovalKind string

// The kinds of approval.
const (
	// ApprovalRequest is a new request that policy did not approve.
	ApprovalRequest ApprovalKind = "request"
	// ApprovalExtension is a lease extension beyond the template's maximum.
	ApprovalExtension ApprovalKind = "extension"
	// ApprovalScale is growing a pool beyond what policy approves by itself.
	ApprovalScale ApprovalKind = "scale"
	// ApprovalRebuild is rebuilding a VM from a version older than its
	// template's current one, asked by someone outside the platform team.
	ApprovalRebuild ApprovalKind = "rebuild"
)

// Verdicts of an approval.
const (
	VerdictApproved  = "approved"
	VerdictRejected  = "rejected"
	VerdictWithdrawn = "withdrawn"
)

// Approval is a decision a person must make (or has made).
type Approval struct {
	ID         int64
	RequestID  int64
	Kind       ApprovalKind
	ExtendDays int
	// Replicas is the pool size a scale approval asks for.
	Replicas int
	// Version is the template version a rebuild approval asks for.
	Version       int
	Reasons       string
	RequestedByID int64
	RequestedBy   string
	CreatedAt     time.Time
	// Verdict is "" while the approval is open.
	Verdict   string
	DecidedBy string
	DecidedAt *time.Time
	Comment   string
	// Request is the request the approval is about (filled by the lists).
	Request Request
}

// Open reports whether nobody has decided yet.
func (a Approval) Open() bool { return a.Verdict == "" }

// Summary says in words what was decided, e.g. "approved by manager at
// 2026-01-02 15:04:05 UTC: fine for the load test".
func (a Approval) Summary() string {
	if a.Open() {
		return "waiting for approval"
	}
	s := a.Verdict
	if a.DecidedBy != "" {
		s += " by " + a.DecidedBy
	}
	if a.DecidedAt != nil {
		s += " at " + fmtUTC(*a.DecidedAt)
	}
	if a.Comment != "" {
		s += ": " + a.Comment
	}
	return s
}

// nouns writes a number with its noun in the right form: "1 day", "3 days".
func nouns(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func fmtUTC(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// DecidedError is returned to the second of two people deciding the same
// approval: it says who decided first, how and when. It wraps ErrConflict.
type DecidedError struct {
	Verdict string
	By      string
	At      time.Time
}

func (e *DecidedError) Error() string { return "conflict: " + e.reason() }

func (e *DecidedError) reason() string {
	return fmt.Sprintf("already %s by %s at %s", e.Verdict, e.By, fmtUTC(e.At))
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *DecidedError) Unwrap() error { return ErrConflict }

// ErrOwnRequest is returned when someone tries to decide their own request
// or extension.
var ErrOwnRequest = errors.New("nobody may approve or reject their own request")

// MaxCommentLen bounds an approver's comment.
const MaxCommentLen = 2000

const approvalSelect = `
	SELECT a.id, a.request_id, a.kind, a.extend_days, a.reasons, a.requested_by, u.login, a.created_at,
	       coalesce(a.verdict, ''), a.decider, a.decided_at, a.comment, a.replicas, a.version
	FROM approvals a JOIN users u ON u.id = a.requested_by`

func scanApproval(row pgx.CollectableRow) (Approval, error) {
	var a Approval
	err := row.Scan(&a.ID, &a.RequestID, &a.Kind, &a.ExtendDays, &a.Reasons, &a.RequestedByID, &a.RequestedBy,
		&a.CreatedAt, &a.Verdict, &a.DecidedBy, &a.DecidedAt, &a.Comment, &a.Replicas, &a.Version)
	return a, err
}

// openApproval puts a decision in the approval queue and announces it.
func (s *Store) openApproval(ctx context.Context, tx pgx.Tx, requestID int64, kind ApprovalKind, n int, reasons string, by Actor) (int64, error) {
	if by.UserID == nil {
		return 0, errors.New("an approval needs a requesting user")
	}
	// n is the days of an extension, the replicas of a scale-up, or the
	// version of a rebuild.
	days, replicas, version := 0, 0, 0
	what := "Approval needed for a new VM"
	switch kind {
	case ApprovalExtension:
		days = n
		what = "Approval needed for a lease extension of " + nouns(n, "day", "days")
	case ApprovalScale:
		replicas = n
		what = fmt.Sprintf("Approval needed to grow a pool to %d VMs", n)
	case ApprovalRebuild:
		version = n
		what = fmt.Sprintf("Approval needed to rebuild a VM from template version %d", n)
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO approvals (request_id, kind, extend_days, replicas, version, reasons, requested_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, requestID, kind, days, replicas, version, reasons, *by.UserID).Scan(&id)
	if isUniqueViolation(err, "approvals_open") {
		return 0, conflictf("something for this request is already waiting for approval")
	}
	if err != nil {
		return 0, fmt.Errorf("open approval: %w", err)
	}
	return id, s.addNotification(ctx, tx, NotifyApprovalNeeded, requestID,
		fmt.Sprintf("%s, asked by %s: %s", what, by.Name, reasons))
}

// closeApprovals withdraws a request's open approval, if any, when the
// request goes away before anyone decided.
func closeApprovals(ctx context.Context, tx pgx.Tx, requestID int64, actor Actor, why string) error {
	_, err := tx.Exec(ctx, `UPDATE approvals SET verdict = 'withdrawn', decided_by = $2, decider = $3, decided_at = now(), comment = $4
		WHERE request_id = $1 AND verdict IS NULL`, requestID, actor.UserID, actor.Name, why)
	if err != nil {
		return fmt.Errorf("withdraw approval: %w", err)
	}
	return nil
}

// Approval returns one approval with its request.
func (s *Store) Approval(ctx context.Context, id int64) (Approval, error) {
	rows, _ := s.pool.Query(ctx, approvalSelect+` WHERE a.id = $1`, id)
	a, err := pgx.CollectExactlyOneRow(rows, scanApproval)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("approval %d: %w", id, err)
	}
	a.Request, err = s.Request(ctx, a.RequestID)
	return a, err
}

// ApprovalQueue lists the open approvals whose request is still waiting,
// oldest first.
func (s *Store) ApprovalQueue(ctx context.Context) ([]Approval, error) {
	return s.approvals(ctx, ` JOIN requests r ON r.id = a.request_id
		WHERE a.verdict IS NULL AND (a.kind = 'request' AND r.state = 'pending_approval'
			OR a.kind IN ('extension', 'scale', 'rebuild') AND r.state NOT IN ('deleted', 'rejected', 'pending_approval'))
		ORDER BY a.created_at, a.id LIMIT 500`)
}

// ApprovalsOf lists a request's approvals, oldest first.
func (s *Store) ApprovalsOf(ctx context.Context, requestID int64) ([]Approval, error) {
	return s.approvals(ctx, ` WHERE a.request_id = $1 ORDER BY a.id`, requestID)
}

func (s *Store) approvals(ctx context.Context, where string, args ...any) ([]Approval, error) {
	rows, _ := s.pool.Query(ctx, approvalSelect+where, args...)
	as, err := pgx.CollectRows(rows, scanApproval)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	if len(as) == 0 {
		return as, nil
	}
	ids := make([]int64, len(as))
	for i, a := range as {
		ids[i] = a.RequestID
	}
	rows, _ = s.pool.Query(ctx, requestSelect+` WHERE r.id = ANY($1)`, ids)
	rs, err := pgx.CollectRows(rows, scanRequest)
	if err != nil {
		return nil, fmt.Errorf("requests of approvals: %w", err)
	}
	byID := make(map[int64]Request, len(rs))
	for _, r := range rs {
		byID[r.ID] = r
	}
	for i := range as {
		as[i].Request = byID[as[i].RequestID]
	}
	return as, nil
}

// DecideApproval approves or rejects an open approval, in one transaction
// with what follows from it: an approved request moves to approved (its
// lease starting now) with its provisioning job; a rejected one moves to
// rejected; an approved extension extends the lease. A rejection needs a
// comment.
//
// Two people deciding at once are serialised by row locks: the second gets
// a *DecidedError naming the first. Nobody decides their own request
// (ErrOwnRequest). Approving a request re-checks the team's quota, and the
// commit checks it again (a *QuotaError), so approvals cannot race past it.
func (s *Store) DecideApproval(ctx context.Context, id int64, approver User, approve bool, comment string) (Approval, error) {
	comment = strings.TrimSpace(comment)
	actor := UserActor(approver)
	verdict := VerdictRejected
	if approve {
		verdict = VerdictApproved
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Lock in the order every writer uses: team, request, approval.
		var requestID, teamID int64
		err := tx.QueryRow(ctx, `SELECT a.request_id, r.team_id FROM approvals a JOIN requests r ON r.id = a.request_id
			WHERE a.id = $1`, id).Scan(&requestID, &teamID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("find approval %d: %w", id, err)
		}
		var team string
		if err := tx.QueryRow(ctx, `SELECT name FROM teams WHERE id = $1 FOR NO KEY UPDATE`, teamID).Scan(&team); err != nil {
			return fmt.Errorf("lock team: %w", err)
		}
		var r struct {
			state       State
			desired     string
			requesterID int64
			vcpu, mem   int
			tplID       int64
			tplVersion  int
			replicas    int
		}
		err = tx.QueryRow(ctx, `SELECT state, desired, requester_id, vcpu, memory_mib, template_id, template_version, replicas
			FROM requests WHERE id = $1 FOR UPDATE`, requestID).
			Scan(&r.state, &r.desired, &r.requesterID, &r.vcpu, &r.mem, &r.tplID, &r.tplVersion, &r.replicas)
		if err != nil {
			return fmt.Errorf("lock request %d: %w", requestID, err)
		}
		rows, _ := tx.Query(ctx, approvalSelect+` WHERE a.id = $1 FOR UPDATE OF a`, id)
		a, err := pgx.CollectExactlyOneRow(rows, scanApproval)
		if err != nil {
			return fmt.Errorf("lock approval %d: %w", id, err)
		}
		if !a.Open() {
			return &DecidedError{Verdict: a.Verdict, By: a.DecidedBy, At: *a.DecidedAt}
		}
		if approver.ID == r.requesterID || approver.ID == a.RequestedByID {
			return ErrOwnRequest
		}
		v := &ValidationError{}
		if !approve && comment == "" {
			v.Add("comment", "is required when rejecting: tell the requester why")
		}
		if len(comment) > MaxCommentLen {
			v.Add("comment", "must be at most %d characters", MaxCommentLen)
		}
		if err := v.OrNil(); err != nil {
			return err
		}
		said := verdict + " by " + approver.Login
		if comment != "" {
			said += ": " + comment
		}
		spec, err := specTx(ctx, tx, r.tplID, r.tplVersion)
		if err != nil {
			return err
		}
		switch {
		case a.Kind == ApprovalRequest && r.state != StatePendingApproval:
			return conflictf("the request is %s now", r.state.Label())
		case a.Kind == ApprovalRequest && approve:
			// The version it pins may have been withdrawn while it waited.
			if msg, err := withdrawnRefusal(ctx, tx, r.tplID, r.tplVersion); err != nil {
				return err
			} else if msg != "" {
				return conflictf("%s; reject it, and the requester asks again", msg)
			}
			add := Usage{VCPU: r.vcpu, MemoryMiB: r.mem, VMs: 1, DiskGiB: spec.RootDiskGiB}.Times(r.replicas)
			if _, blockers, err := quotaCheck(ctx, tx, teamID, add); err != nil {
				return err
			} else if len(blockers) > 0 {
				return conflictf("approving it would exceed the quota of team %s: %s; reject it, or raise the quota first", team, strings.Join(blockers, "; "))
			}
			// The lease runs from approval, not from submission.
			if _, err := tx.Exec(ctx, `UPDATE requests SET expires_at = now() + make_interval(days => lease_days) WHERE id = $1`, requestID); err != nil {
				return fmt.Errorf("start lease: %w", err)
			}
			if _, err := transition(ctx, tx, requestID, StateApproved, actor, "approval", said, StatePendingApproval); err != nil {
				return err
			}
			if err := s.reconcileLater(ctx, tx, requestID); err != nil {
				return err
			}
		case a.Kind == ApprovalRequest:
			if _, err := transition(ctx, tx, requestID, StateRejected, actor, "approval", said, StatePendingApproval); err != nil {
				return err
			}
		case r.state.Terminal() || r.state == StatePendingApproval || r.desired == "deleted":
			return conflictf("the request is %s now", r.state.Label())
		case a.Kind == ApprovalScale && approve:
			if !slices.Contains(scaleStates, r.state) {
				return conflictf("the pool is %s now; reject the scale-up, or wait until it is running", r.state.Label())
			}
			if msg, err := withdrawnRefusal(ctx, tx, r.tplID, r.tplVersion); err != nil {
				return err
			} else if msg != "" && a.Replicas > r.replicas {
				return conflictf("%s; reject the scale-up, or rebuild the pool from another version first", msg)
			}
			if grow := a.Replicas - r.replicas; grow > 0 {
				add := Usage{VCPU: r.vcpu, MemoryMiB: r.mem, VMs: 1, DiskGiB: spec.RootDiskGiB}.Times(grow)
				if _, blockers, err := quotaCheck(ctx, tx, teamID, add); err != nil {
					return err
				} else if len(blockers) > 0 {
					return conflictf("approving it would exceed the quota of team %s: %s; reject it, or raise the quota first", team, strings.Join(blockers, "; "))
				}
			}
			if err := s.applyScale(ctx, tx, requestID, r.state, r.replicas, a.Replicas, actor, "; "+said); err != nil {
				return err
			}
		case a.Kind == ApprovalRebuild && approve:
			// Everything is checked again now: the VM's state, the version
			// (withdrawn since?), its sizes and the team's quota.
			_, err := s.rebuildTx(ctx, tx, requestID, rebuildArgs{version: a.Version, actor: actor,
				askedBy: &a.RequestedByID, via: said, older: true})
			var verr *ValidationError
			if errors.As(err, &verr) {
				return conflictf("the VM cannot be rebuilt from v%d now: %s; reject it", a.Version, verr.Messages())
			}
			if err != nil {
				return err
			}
		case a.Kind == ApprovalRebuild:
			if err := addEvent(ctx, tx, requestID, actor, "rebuild_rejected", r.state, r.state,
				fmt.Sprintf("rebuilding from v%d %s", a.Version, said)); err != nil {
				return err
			}
			if err := notify(ctx, tx, requestID); err != nil {
				return err
			}
		case a.Kind == ApprovalScale:
			if err := addEvent(ctx, tx, requestID, actor, "scale_rejected", r.state, r.state,
				fmt.Sprintf("growing the pool to %d VMs %s", a.Replicas, said)); err != nil {
				return err
			}
			if err := notify(ctx, tx, requestID); err != nil {
				return err
			}
		case approve:
			if _, err := s.extendTx(ctx, tx, requestID, r.state, a.ExtendDays, actor, time.Now(), "; "+said); err != nil {
				return err
			}
		default:
			if err := addEvent(ctx, tx, requestID, actor, "extension_rejected", r.state, r.state,
				fmt.Sprintf("lease extension of %s %s", nouns(a.ExtendDays, "day", "days"), said)); err != nil {
				return err
			}
			if err := notify(ctx, tx, requestID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE approvals SET verdict = $2, decided_by = $3, decider = $4, decided_at = now(), comment = $5
			WHERE id = $1`, id, verdict, approver.ID, approver.Login, comment)
		if err != nil {
			return fmt.Errorf("record decision: %w", err)
		}
		kind := NotifyApproved
		if !approve {
			kind = NotifyRejected
		}
		what := "The request was " + said
		switch a.Kind {
		case ApprovalExtension:
			what = fmt.Sprintf("The lease extension of %s was %s", nouns(a.ExtendDays, "day", "days"), said)
		case ApprovalScale:
			what = fmt.Sprintf("Growing the pool to %d VMs was %s", a.Replicas, said)
		case ApprovalRebuild:
			what = fmt.Sprintf("Rebuilding the VM from v%d was %s", a.Version, said)
		}
		if err := s.addNotification(ctx, tx, kind, requestID, what); err != nil {
			return err
		}
		return s.Audit(ctx, tx, actor, AuditApproval, RequestTarget(requestID), map[string]any{
			"approval": id, "kind": string(a.Kind), "verdict": verdict, "comment": comment, "reasons": a.Reasons})
	})
	if err != nil {
		return Approval{}, err
	}
	return s.Approval(ctx, id)
}

// specTx loads one template version's spec inside tx.
func specTx(ctx context.Context, tx pgx.Tx, templateID int64, version int) (TemplateSpec, error) {
	var sp TemplateSpec
	err := tx.QueryRow(ctx, `SELECT spec FROM template_versions WHERE template_id = $1 AND version = $2`,
		templateID, version).Scan(&sp)
	if err != nil {
		return sp, fmt.Errorf("template version %d/%d: %w", templateID, version, err)
	}
	return sp, nil
}
