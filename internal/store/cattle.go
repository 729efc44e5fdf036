package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// AuditVMRebuild and AuditVMPet are the audit actions of this file.
const (
	AuditVMRebuild = "vm_rebuild"
	AuditVMPet     = "vm_pet"
)

// Rebuild is what RequestRebuild did.
type Rebuild struct {
	FromVersion, ToVersion int
	// Size is the request's size; vCPU and memory may change with the version.
	Size string
	// Pending is true when the rebuild waits for a person (ApprovalID), for
	// Reason: nothing was rebuilt yet.
	Pending    bool
	ApprovalID int64
	Reason     string
}

// RequestRebuild rebuilds a request's VM from version of its template (0
// means the current version), keeping its name, team, owner and lease. In
// one transaction it checks the team's quota for the new size (with the team
// row locked, as SubmitRequest does), pins the request to the version, sets
// the desired state to running, moves the request back to approved with the
// reason, and enqueues the RebuildJob. A pet is rebuilt only by its owner.
//
// A version older than the current one was replaced for a reason: only the
// platform team (by the actor's role) rebuilds to it at once. For anyone
// else, once every check passes, an approval of kind rebuild is opened
// instead and the VM stays as it is (Rebuild.Pending). A withdrawn version
// is refused to everyone.
//
// It returns a *ValidationError for a version or size that does not fit, and
// an error wrapping ErrConflict when the request's state does not allow it.
func (s *Store) RequestRebuild(ctx context.Context, id int64, version int, actor Actor) (Rebuild, error) {
	var out Rebuild
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		older := false
		if actor.UserID != nil {
			var role Role
			if err := tx.QueryRow(ctx, `SELECT role FROM users WHERE id = $1`, *actor.UserID).Scan(&role); err != nil {
				return fmt.Errorf("role of user %d: %w", *actor.UserID, err)
			}
			older = role == RolePlatform
		}
		var err error
		out, err = s.rebuildTx(ctx, tx, id, rebuildArgs{version: version, actor: actor, older: older})
		return err
	})
	return out, err
}

// rebuildArgs is what rebuildTx is asked to do, and on whose behalf.
type rebuildArgs struct {
	// version is the version to rebuild from; 0 means the current one.
	version int
	// actor does the rebuild: the event and the audit entry name them.
	actor Actor
	// askedBy is who asked for it, when not the actor (an approval): a pet
	// is rebuilt only when its owner asked.
	askedBy *int64
	// via, when set, says what asked for the rebuild (a rollout, an
	// approval) in the request's event.
	via string
	// older allows a version older than the current one at once; without
	// it such a rebuild opens an approval.
	older bool
}

// rebuildTx is RequestRebuild inside tx.
func (s *Store) rebuildTx(ctx context.Context, tx pgx.Tx, id int64, a rebuildArgs) (Rebuild, error) {
	version, actor := a.version, a.actor
	asker := actor.UserID
	if a.askedBy != nil {
		asker = a.askedBy
	}
	// Lock order as every writer: team, then request.
	t, err := lockTeamOfRequest(ctx, tx, id)
	if err != nil {
		return Rebuild{}, err
	}
	team, teamID := t.Name, t.ID
	var (
		state                      State
		desired, size, owner, name string
		requesterID, tplID         int64
		oldVersion, vcpu, mem      int
		pet                        bool
		replicas                   int
	)
	err = tx.QueryRow(ctx, `
		SELECT r.state, r.desired, r.size, u.login, r.name, r.requester_id, r.template_id, r.template_version,
		       r.vcpu, r.memory_mib, r.pet, r.replicas
		FROM requests r JOIN users u ON u.id = r.requester_id WHERE r.id = $1 FOR UPDATE OF r`, id).
		Scan(&state, &desired, &size, &owner, &name, &requesterID, &tplID, &oldVersion, &vcpu, &mem, &pet, &replicas)
	if err != nil {
		return Rebuild{}, fmt.Errorf("lock request %d: %w", id, err)
	}
	if pet && (asker == nil || *asker != requesterID) {
		return Rebuild{}, conflictf("%s is a pet; only its owner, %s, may rebuild it", name, owner)
	}
	if !RebuildAllowed(state) || desired == "deleted" {
		what := state.Label()
		if state == StateApproved {
			what = "being provisioned or rebuilt already"
		} else if desired == "deleted" {
			what = "being deleted"
		}
		return Rebuild{}, conflictf("cannot rebuild a VM that is %s", what)
	}
	var tplName string
	var current int
	var retired bool
	err = tx.QueryRow(ctx, `SELECT name, current_version, retired_at IS NOT NULL FROM templates WHERE id = $1`, tplID).
		Scan(&tplName, &current, &retired)
	if err != nil {
		return Rebuild{}, fmt.Errorf("load template %d: %w", tplID, err)
	}
	v := &ValidationError{}
	if retired {
		v.Add("version", "template %s is retired; it builds no more VMs", tplName)
		return Rebuild{}, v
	}
	if version == 0 {
		version = current
	}
	if version < 0 || version > current {
		v.Add("version", "template %s has no version %d (the latest is v%d)", tplName, version, current)
		return Rebuild{}, v
	}
	if msg, err := withdrawnRefusal(ctx, tx, tplID, version); err != nil {
		return Rebuild{}, err
	} else if msg != "" {
		v.Add("version", "%s", msg)
		return Rebuild{}, v
	}
	newSpec, err := specTx(ctx, tx, tplID, version)
	if err != nil {
		return Rebuild{}, err
	}
	oldSpec, err := specTx(ctx, tx, tplID, oldVersion)
	if err != nil {
		return Rebuild{}, err
	}
	if !newSpec.AllowsTeam(team) {
		v.Add("version", "template %s v%d is not offered to team %s", tplName, version, team)
		return Rebuild{}, v
	}
	sz, ok := newSpec.Size(size)
	if !ok {
		names := make([]string, len(newSpec.Sizes))
		for i, s := range newSpec.Sizes {
			names[i] = s.Name
		}
		v.Add("size", "template %s v%d has no size %q (it offers %s); this VM cannot be rebuilt from it",
			tplName, version, size, strings.Join(names, ", "))
		return Rebuild{}, v
	}
	// The quota counts this VM already: check the team's use without it
	// plus the new size, and refuse only what the rebuild makes grow.
	// A pool is rebuilt whole: its replicas VMs count on both sides.
	old := Usage{VCPU: vcpu, MemoryMiB: mem, VMs: 1, DiskGiB: oldSpec.RootDiskGiB}.Times(replicas)
	add := UsageOf(newSpec, sz).Times(replicas)
	q, err := teamQuota(ctx, tx, teamID)
	if err != nil {
		return Rebuild{}, err
	}
	if q.Limited() {
		used, err := teamUsage(ctx, tx, teamID)
		if err != nil {
			return Rebuild{}, err
		}
		without := Usage{VCPU: used.VCPU - old.VCPU, MemoryMiB: used.MemoryMiB - old.MemoryMiB,
			VMs: used.VMs - old.VMs, DiskGiB: used.DiskGiB - old.DiskGiB}
		grows := map[string]bool{"vCPU": add.VCPU > old.VCPU, "memory": add.MemoryMiB > old.MemoryMiB,
			"VMs": false, "disk": add.DiskGiB > old.DiskGiB}
		var blockers []string
		for _, l := range q.Lines(without, add) {
			if l.Over() && grows[l.Resource] {
				blockers = append(blockers, l.Blocker())
			}
		}
		if len(blockers) > 0 {
			v.Add("quota", "%s", QuotaMessage(team, blockers))
			return Rebuild{}, v
		}
	}
	if version < current && !a.older {
		return s.askRebuild(ctx, tx, id, state, tplName, version, current, oldVersion, actor)
	}
	cpu, memMiB := sz.Resources()
	if _, err := tx.Exec(ctx, `UPDATE requests SET template_version = $2, size = $3, vcpu = $4, memory_mib = $5,
		desired = 'running', updated_at = now() WHERE id = $1`, id, version, sz.Name, cpu, memMiB); err != nil {
		return Rebuild{}, fmt.Errorf("pin request %d to v%d: %w", id, version, err)
	}
	reason := fmt.Sprintf("rebuilding from %s v%d", tplName, version)
	if version != oldVersion {
		reason += fmt.Sprintf(" (was v%d)", oldVersion)
	}
	if newSpec.Image.Ephemeral() {
		reason += "; the disk starts fresh"
	}
	if a.via != "" {
		reason += " (" + a.via + ")"
	}
	if _, err := transition(ctx, tx, id, StateApproved, actor, "rebuild", reason, rebuildStates...); err != nil {
		return Rebuild{}, err
	}
	if err := s.Audit(ctx, tx, actor, AuditVMRebuild, RequestTarget(id), map[string]any{
		"template": tplName, "from": oldVersion, "to": version, "size": sz.Name, "state": string(state)}); err != nil {
		return Rebuild{}, err
	}
	if err := s.reconcileLater(ctx, tx, id); err != nil {
		return Rebuild{}, err
	}
	return Rebuild{FromVersion: oldVersion, ToVersion: version, Size: sz.Name}, nil
}

// askRebuild opens the approval for a rebuild to an older version, with
// the reason stored for the approver, and records that it was asked.
func (s *Store) askRebuild(ctx context.Context, tx pgx.Tx, id int64, state State, tplName string, version, current, from int, actor Actor) (Rebuild, error) {
	reason := fmt.Sprintf("rebuild to %s v%d, older than the current v%d", tplName, version, current)
	aid, err := s.openApproval(ctx, tx, id, ApprovalRebuild, version, reason, actor)
	if err != nil {
		return Rebuild{}, err
	}
	if err := addEvent(ctx, tx, id, actor, "rebuild_requested", state, state,
		fmt.Sprintf("asked to rebuild from %s v%d (is v%d): needs approval: %s", tplName, version, from, reason)); err != nil {
		return Rebuild{}, err
	}
	if err := s.Audit(ctx, tx, actor, AuditVMRebuild, RequestTarget(id), map[string]any{
		"template": tplName, "from": from, "to": version, "state": string(state), "decision": "pending_approval",
		"approval": aid, "reason": reason}); err != nil {
		return Rebuild{}, err
	}
	if err := notify(ctx, tx, id); err != nil {
		return Rebuild{}, err
	}
	return Rebuild{FromVersion: from, ToVersion: version, Pending: true, ApprovalID: aid, Reason: reason}, nil
}

// SetPet marks a request's VM as a pet (only its owner may rebuild it) or as
// cattle again, recording an event and an audit entry when it changes. Who
// may do so is the caller's decision (the owner).
func (s *Store) SetPet(ctx context.Context, id int64, pet bool, actor Actor) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var state State
		var was bool
		err := tx.QueryRow(ctx, `SELECT state, pet FROM requests WHERE id = $1 FOR UPDATE`, id).Scan(&state, &was)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock request %d: %w", id, err)
		}
		if was == pet {
			return nil
		}
		if state.Terminal() {
			return conflictf("the request is %s", state.Label())
		}
		if _, err := tx.Exec(ctx, `UPDATE requests SET pet = $2, updated_at = now() WHERE id = $1`, id, pet); err != nil {
			return fmt.Errorf("set pet: %w", err)
		}
		reason := "marked as a pet: only its owner may rebuild it"
		if !pet {
			reason = "marked as cattle: the platform team may rebuild it too"
		}
		if err := addEvent(ctx, tx, id, actor, "pet", state, state, reason); err != nil {
			return err
		}
		if err := s.Audit(ctx, tx, actor, AuditVMPet, RequestTarget(id), map[string]any{"pet": pet}); err != nil {
			return err
		}
		return notify(ctx, tx, id)
	})
}

// TeamManifests lists a team's requests whose VM exists (or should), with
// the manifest each was created from, by VM name: what an export for
// version control writes.
func (s *Store) TeamManifests(ctx context.Context, teamID int64) ([]Request, error) {
	rows, _ := s.pool.Query(ctx, requestSelect+` WHERE r.team_id = $1
		AND r.state IN ('provisioning', 'running', 'stopped', 'failed', 'expired') AND v.manifest <> ''
		ORDER BY v.name, r.id`, teamID)
	rs, err := pgx.CollectRows(rows, scanRequest)
	if err != nil {
		return nil, fmt.Errorf("manifests of team %d: %w", teamID, err)
	}
	return rs, nil
}
