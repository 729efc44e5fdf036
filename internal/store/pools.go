package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Pool limits. A pool is counted against quota as Replicas VMs; policy
// approves a pool of up to the template's MaxAutoReplicas (default
// DefaultMaxAutoReplicas) by itself, and a person decides a larger one.
const (
	MaxPoolReplicas        = 100
	DefaultMaxAutoReplicas = 3
)

// AuditPoolScale is the audit action for scaling a pool.
const AuditPoolScale = "pool_scale"

// poolReplicas is the Replicas of a PolicyInput: 0 for a single VM.
func poolReplicas(pool bool, replicas int) int {
	if !pool {
		return 0
	}
	return replicas
}

// PoolMember is what the watcher last saw of one VM of a pool.
type PoolMember struct {
	Name    string
	Status  string
	IP      string
	Ready   bool
	Message string
}

// poolMembers lists a pool's members in index order (pool-2 before pool-10).
func poolMembers(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, id int64) ([]PoolMember, error) {
	rows, _ := q.Query(ctx, `SELECT name, status, ip, ready, message FROM pool_members
		WHERE request_id = $1 ORDER BY length(name), name`, id)
	ms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PoolMember, error) {
		var m PoolMember
		err := row.Scan(&m.Name, &m.Status, &m.IP, &m.Ready, &m.Message)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("members of pool %d: %w", id, err)
	}
	return ms, nil
}

// syncMembers makes the stored members of pool id what the watcher saw,
// writing only what differs. It reports whether anything changed.
func syncMembers(ctx context.Context, tx pgx.Tx, id int64, seen []PoolMember) (bool, error) {
	old, err := poolMembers(ctx, tx, id)
	if err != nil {
		return false, err
	}
	byName := make(map[string]PoolMember, len(old))
	for _, m := range old {
		byName[m.Name] = m
	}
	changed := false
	keep := make([]string, 0, len(seen))
	for _, m := range seen {
		keep = append(keep, m.Name)
		if o, ok := byName[m.Name]; ok && o == m {
			continue
		}
		changed = true
		_, err := tx.Exec(ctx, `INSERT INTO pool_members (request_id, name, status, ip, ready, message) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (request_id, name) DO UPDATE SET status = EXCLUDED.status, ip = EXCLUDED.ip, ready = EXCLUDED.ready,
				message = EXCLUDED.message, updated_at = now()`, id, m.Name, m.Status, m.IP, m.Ready, m.Message)
		if err != nil {
			return false, fmt.Errorf("record pool member %s: %w", m.Name, err)
		}
	}
	tag, err := tx.Exec(ctx, `DELETE FROM pool_members WHERE request_id = $1 AND name <> ALL($2)`, id, keep)
	if err != nil {
		return false, fmt.Errorf("forget pool members: %w", err)
	}
	return changed || tag.RowsAffected() > 0, nil
}

// Scale is what ScalePool did.
type Scale struct {
	From, To int
	// Pending is set when growing beyond policy opened an approval instead:
	// the pool keeps From VMs until someone approves.
	Pending bool
	// Decision is the policy's verdict on a scale-up, in words.
	Decision string
}

// ScaleQuota is what scaling a pool to replicas would do to its team's
// quota, for the scale form.
type ScaleQuota struct {
	Quota    Quota
	Used     Usage
	PerVM    Usage
	Lines    []QuotaLine
	Blockers []string
}

// PreviewScale works out, without writing anything, the quota effect of
// scaling pool r to replicas: the team's use, and what the change adds
// (negative when shrinking).
func (s *Store) PreviewScale(ctx context.Context, r Request, replicas int) (ScaleQuota, error) {
	var out ScaleQuota
	spec, err := s.spec(ctx, r.TemplateID, r.TemplateVersion)
	if err != nil {
		return out, err
	}
	if out.Quota, err = teamQuota(ctx, s.pool, r.TeamID); err != nil {
		return out, err
	}
	if out.Used, err = teamUsage(ctx, s.pool, r.TeamID); err != nil {
		return out, err
	}
	out.PerVM = Usage{VCPU: r.VCPU, MemoryMiB: r.MemoryMiB, VMs: 1, DiskGiB: spec.RootDiskGiB}
	add := out.PerVM.Times(replicas - r.Replicas)
	out.Lines = out.Quota.Lines(out.Used, add)
	if replicas > r.Replicas {
		out.Blockers = out.Quota.Blockers(out.Used, add)
	}
	return out, nil
}

func (s *Store) spec(ctx context.Context, templateID int64, version int) (TemplateSpec, error) {
	var sp TemplateSpec
	err := s.pool.QueryRow(ctx, `SELECT spec FROM template_versions WHERE template_id = $1 AND version = $2`,
		templateID, version).Scan(&sp)
	if err != nil {
		return sp, fmt.Errorf("template version %d/%d: %w", templateID, version, err)
	}
	return sp, nil
}

// ScalePool changes how many VMs pool id has. Shrinking is always allowed;
// growing is checked against the team's quota (a refusal is a
// *ValidationError on "replicas" naming the exceeded limit, or a *QuotaError
// when a concurrent change took the room first) and against policy: within it, the pool grows now;
// beyond it, an approval of kind scale is opened and the pool keeps its size
// until someone approves. A change is recorded (replicas, event, audit) and
// its ScaleJob enqueued in one transaction, so quota usage and the job that
// sets spec.replicas never disagree for long. Scaling to the current size
// changes nothing.
func (s *Store) ScalePool(ctx context.Context, id int64, replicas int, actor Actor) (Scale, error) {
	var out Scale
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		team, err := lockTeamOfRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		var (
			state               State
			desired, size, name string
			pool                bool
			current, vcpu, mem  int
			tplID               int64
			tplVersion          int
		)
		err = tx.QueryRow(ctx, `SELECT state, desired, size, name, pool, replicas, vcpu, memory_mib, template_id, template_version
			FROM requests WHERE id = $1 FOR UPDATE`, id).
			Scan(&state, &desired, &size, &name, &pool, &current, &vcpu, &mem, &tplID, &tplVersion)
		if err != nil {
			return fmt.Errorf("lock request %d: %w", id, err)
		}
		out = Scale{From: current, To: current}
		if !pool {
			return conflictf("%s is a single VM, not a pool", name)
		}
		v := &ValidationError{}
		if replicas < 1 || replicas > MaxPoolReplicas {
			v.Add("replicas", "must be between 1 and %d VMs", MaxPoolReplicas)
			return v
		}
		if !ScaleAllowed(state) || desired == "deleted" {
			what := state.Label()
			switch {
			case desired == "deleted":
				what = "being deleted"
			case state == StateApproved:
				what = "being provisioned or rebuilt"
			case state == StateExpired:
				what = "expired (extend its lease first)"
			}
			return conflictf("cannot scale a pool that is %s", what)
		}
		if replicas == current {
			return nil
		}
		out.To = replicas
		if replicas < current {
			return s.applyScale(ctx, tx, id, state, current, replicas, actor, "")
		}
		// Growing builds VMs from the pool's version: not from a withdrawn one.
		if msg, err := withdrawnRefusal(ctx, tx, tplID, tplVersion); err != nil {
			return err
		} else if msg != "" {
			v.Add("replicas", "%s; rebuild the pool from another version before growing it", msg)
			return v
		}
		spec, err := specTx(ctx, tx, tplID, tplVersion)
		if err != nil {
			return err
		}
		sz, ok := spec.Size(size)
		if !ok {
			return fmt.Errorf("template version %d/%d has no size %q", tplID, tplVersion, size)
		}
		add := Usage{VCPU: vcpu, MemoryMiB: mem, VMs: 1, DiskGiB: spec.RootDiskGiB}.Times(replicas - current)
		quota, blockers, err := quotaCheck(ctx, tx, team.ID, add)
		if err != nil {
			return err
		}
		if len(blockers) > 0 {
			v.Add("replicas", "%s", QuotaMessage(team.Name, blockers))
			return v
		}
		rule, err := ruleFor(ctx, tx, team.ID, tplID)
		if err != nil {
			return err
		}
		d := Decide(PolicyInput{Team: team, Template: spec, Size: sz, Quota: quota, Rule: rule, Replicas: replicas})
		out.Decision = d.String()
		if d.Approve {
			return s.applyScale(ctx, tx, id, state, current, replicas, actor, "; "+d.String())
		}
		if _, err := s.openApproval(ctx, tx, id, ApprovalScale, replicas, d.String(), actor); err != nil {
			return err
		}
		out.To, out.Pending = current, true
		if err := addEvent(ctx, tx, id, actor, "scale_requested", state, state,
			fmt.Sprintf("asked to grow the pool from %d to %d VMs: %s", current, replicas, d.String())); err != nil {
			return err
		}
		if err := s.Audit(ctx, tx, actor, AuditPoolScale, RequestTarget(id), map[string]any{
			"from": current, "to": replicas, "decision": "pending_approval"}); err != nil {
			return err
		}
		return notify(ctx, tx, id)
	})
	return out, err
}

// applyScale records a pool's new size and enqueues the job that sets it in
// the cluster.
func (s *Store) applyScale(ctx context.Context, tx pgx.Tx, id int64, state State, from, to int, actor Actor, why string) error {
	if _, err := tx.Exec(ctx, `UPDATE requests SET replicas = $2, updated_at = now() WHERE id = $1`, id, to); err != nil {
		return fmt.Errorf("scale request %d: %w", id, err)
	}
	if err := addEvent(ctx, tx, id, actor, "scale", state, state,
		fmt.Sprintf("pool scaled from %d to %s%s", from, nouns(to, "VM", "VMs"), why)); err != nil {
		return err
	}
	if err := s.Audit(ctx, tx, actor, AuditPoolScale, RequestTarget(id), map[string]any{
		"from": from, "to": to, "decision": "applied"}); err != nil {
		return err
	}
	if err := s.reconcileLater(ctx, tx, id); err != nil {
		return err
	}
	return notify(ctx, tx, id)
}

// MemberIndex is the index KubeVirt gives a pool member named
// "<pool>-<index>", or -1.
func MemberIndex(pool, member string) int {
	rest, ok := strings.CutPrefix(member, pool+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil {
		return -1
	}
	return n
}

// MembersSummary says how many of a pool's members are ready, e.g. "2/3 ready".
func MembersSummary(ms []PoolMember, replicas int) string {
	ready := 0
	for _, m := range ms {
		if m.Ready {
			ready++
		}
	}
	return fmt.Sprintf("%d/%d ready", ready, replicas)
}
