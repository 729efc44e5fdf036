package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Quota is a team's hard limit on what its VMs use at once. A nil field
// means no limit on that resource.
type Quota struct {
	TeamID    int64
	VCPU      *int
	MemoryMiB *int
	VMs       *int
	DiskGiB   *int
	UpdatedBy string
	UpdatedAt *time.Time
}

// Limited reports whether the quota limits anything.
func (q Quota) Limited() bool {
	return q.VCPU != nil || q.MemoryMiB != nil || q.VMs != nil || q.DiskGiB != nil
}

// Usage is what a team's VMs use, or what one request adds.
type Usage struct {
	VCPU      int
	MemoryMiB int
	VMs       int
	DiskGiB   int
}

// Add returns the sum of two usages.
func (u Usage) Add(o Usage) Usage {
	return Usage{VCPU: u.VCPU + o.VCPU, MemoryMiB: u.MemoryMiB + o.MemoryMiB, VMs: u.VMs + o.VMs, DiskGiB: u.DiskGiB + o.DiskGiB}
}

// Times is the usage of n VMs like the one u describes (a pool of n).
func (u Usage) Times(n int) Usage {
	return Usage{VCPU: u.VCPU * n, MemoryMiB: u.MemoryMiB * n, VMs: u.VMs * n, DiskGiB: u.DiskGiB * n}
}

// UsageOf is what one VM of size from template adds to its team's usage.
func UsageOf(t TemplateSpec, size Size) Usage {
	cpu, mem := size.Resources()
	return Usage{VCPU: cpu, MemoryMiB: mem, VMs: 1, DiskGiB: t.RootDiskGiB}
}

// QuotaLine is one resource of a quota with its use, for forms and checks.
type QuotaLine struct {
	// Resource is "vCPU", "memory", "VMs" or "disk".
	Resource string
	Used     int
	Adds     int
	// Limit is nil when the resource is not limited.
	Limit *int
}

// After is the use once the request is added.
func (l QuotaLine) After() int { return l.Used + l.Adds }

// Over reports whether adding the request exceeds the limit.
func (l QuotaLine) Over() bool { return l.Limit != nil && l.After() > *l.Limit }

// Format renders an amount of this resource, e.g. "36 GiB" or "4".
func (l QuotaLine) Format(n int) string {
	switch l.Resource {
	case "memory":
		return FormatMiB(n)
	case "disk":
		return fmt.Sprintf("%d GiB", n)
	}
	return fmt.Sprint(n)
}

// Blocker names the exceeded limit as the form and errors show it, e.g.
// "memory 36 GiB of 32 GiB".
func (l QuotaLine) Blocker() string {
	return fmt.Sprintf("%s %s of %s", l.Resource, l.Format(l.After()), l.Format(*l.Limit))
}

// Lines lays the quota out resource by resource, with what the team uses and
// what add would add. Disk is left out when neither the quota nor the
// request mentions it.
func (q Quota) Lines(used, add Usage) []QuotaLine {
	ls := []QuotaLine{
		{Resource: "vCPU", Used: used.VCPU, Adds: add.VCPU, Limit: q.VCPU},
		{Resource: "memory", Used: used.MemoryMiB, Adds: add.MemoryMiB, Limit: q.MemoryMiB},
		{Resource: "VMs", Used: used.VMs, Adds: add.VMs, Limit: q.VMs},
	}
	if q.DiskGiB != nil || used.DiskGiB > 0 || add.DiskGiB > 0 {
		ls = append(ls, QuotaLine{Resource: "disk", Used: used.DiskGiB, Adds: add.DiskGiB, Limit: q.DiskGiB})
	}
	return ls
}

// Blockers lists every limit that adding add to used would exceed, in words:
// "memory 36 GiB of 32 GiB". Empty means the request fits.
func (q Quota) Blockers(used, add Usage) []string {
	var out []string
	for _, l := range q.Lines(used, add) {
		if l.Over() {
			out = append(out, l.Blocker())
		}
	}
	return out
}

// FormatMiB renders memory in GiB where it divides evenly, e.g. "32 GiB",
// "1.5 GiB", "512 MiB".
func FormatMiB(mib int) string {
	switch {
	case mib%1024 == 0:
		return fmt.Sprintf("%d GiB", mib/1024)
	case mib > 1024:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(mib)/1024), ".0") + " GiB"
	}
	return fmt.Sprintf("%d MiB", mib)
}

// queryRower is what reading one row needs of a pool or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// teamUsage reads the team's row of team_usage, which a trigger on requests
// keeps as the sum over the requests whose VM exists or is about to
// (approved, provisioning, running, stopped, failed, expired; pending
// requests are checked again when approved): a pool counts as its
// replicas, each with the request's vCPU, memory and disk. The row is
// written only when a transaction that changes usage commits, so reading it
// never waits.
func teamUsage(ctx context.Context, q queryRower, teamID int64) (Usage, error) {
	var u Usage
	err := q.QueryRow(ctx, `SELECT vms, vcpu, memory_mib, disk_gib FROM team_usage WHERE team_id = $1`, teamID).
		Scan(&u.VMs, &u.VCPU, &u.MemoryMiB, &u.DiskGiB)
	if errors.Is(err, pgx.ErrNoRows) {
		return Usage{}, nil
	}
	if err != nil {
		return u, fmt.Errorf("usage of team %d: %w", teamID, err)
	}
	return u, nil
}

// QuotaError is a change refused when its transaction committed because it
// would take its team over quota: a concurrent change took the room that the
// change's own check, made without waiting for the others, still saw. It is
// an ErrConflict.
type QuotaError struct {
	Team     string
	Blockers []string
}

func (e *QuotaError) Error() string {
	return ErrConflict.Error() + ": " + QuotaMessage(e.Team, e.Blockers)
}

// Unwrap makes a QuotaError an ErrConflict.
func (e *QuotaError) Unwrap() error { return ErrConflict }

// quotaRefusal turns the refusal of the team_usage trigger (migration
// 0013_team_usage.sql) into a *QuotaError; other errors pass unchanged.
func quotaRefusal(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ConstraintName != "team_quota" {
		return err
	}
	type usage struct { // Usage's fields, in its order
		VCPU      int `json:"vcpu"`
		MemoryMiB int `json:"memoryMiB"`
		VMs       int `json:"vms"`
		DiskGiB   int `json:"diskGiB"`
	}
	var d struct {
		Team  string `json:"team"`
		Used  usage  `json:"used"`
		Adds  usage  `json:"adds"`
		Limit struct {
			VMs       *int `json:"vms"`
			VCPU      *int `json:"vcpu"`
			MemoryMiB *int `json:"memoryMiB"`
			DiskGiB   *int `json:"diskGiB"`
		} `json:"limit"`
	}
	if jerr := json.Unmarshal([]byte(pgErr.Detail), &d); jerr != nil {
		return fmt.Errorf("read quota refusal %q: %w (refusal: %w)", pgErr.Detail, jerr, err)
	}
	q := Quota{VMs: d.Limit.VMs, VCPU: d.Limit.VCPU, MemoryMiB: d.Limit.MemoryMiB, DiskGiB: d.Limit.DiskGiB}
	return &QuotaError{Team: d.Team, Blockers: q.Blockers(Usage(d.Used), Usage(d.Adds))}
}

func teamQuota(ctx context.Context, q queryRower, teamID int64) (Quota, error) {
	qt := Quota{TeamID: teamID}
	var by *string
	err := q.QueryRow(ctx, `
		SELECT tq.vcpu, tq.memory_mib, tq.vms, tq.disk_gib, u.login, tq.updated_at
		FROM team_quotas tq LEFT JOIN users u ON u.id = tq.updated_by
		WHERE tq.team_id = $1`, teamID).
		Scan(&qt.VCPU, &qt.MemoryMiB, &qt.VMs, &qt.DiskGiB, &by, &qt.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return qt, nil
	}
	if err != nil {
		return qt, fmt.Errorf("quota of team %d: %w", teamID, err)
	}
	if by != nil {
		qt.UpdatedBy = *by
	}
	return qt, nil
}

// TeamQuota returns a team's quota; a team without one gets a Quota that
// limits nothing.
func (s *Store) TeamQuota(ctx context.Context, teamID int64) (Quota, error) {
	return teamQuota(ctx, s.pool, teamID)
}

// TeamUsage returns what a team's VMs use now.
func (s *Store) TeamUsage(ctx context.Context, teamID int64) (Usage, error) {
	return teamUsage(ctx, s.pool, teamID)
}

// TeamQuotaUsage is a team with its quota and usage, for the platform page.
type TeamQuotaUsage struct {
	Team  Team
	Quota Quota
	Usage Usage
}

// TeamQuotas lists every team with its quota and usage, by team name.
func (s *Store) TeamQuotas(ctx context.Context) ([]TeamQuotaUsage, error) {
	teams, err := s.Teams(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]TeamQuotaUsage, 0, len(teams))
	for _, t := range teams {
		q, err := s.TeamQuota(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		u, err := s.TeamUsage(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, TeamQuotaUsage{Team: t, Quota: q, Usage: u})
	}
	return out, nil
}

// MaxQuota bounds each quota number, far above any real team and well inside int32.
const MaxQuota = 1_000_000

// SetTeamQuota replaces a team's quota; nil fields lift that limit. A quota
// below current usage is allowed (it blocks new VMs until usage falls) and
// is reported in the audit log with the usage at the time.
func (s *Store) SetTeamQuota(ctx context.Context, q Quota, actor Actor) error {
	v := &ValidationError{}
	for _, f := range []struct {
		field string
		n     *int
		unit  int
	}{{"vcpu", q.VCPU, 1}, {"memoryGiB", q.MemoryMiB, 1024}, {"vms", q.VMs, 1}, {"diskGiB", q.DiskGiB, 1}} {
		if f.n != nil && (*f.n < 0 || *f.n > MaxQuota*f.unit) {
			v.Add(f.field, "must be a whole number from 0 to %d, or empty for no limit", MaxQuota)
		}
	}
	if err := v.OrNil(); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var team string
		err := tx.QueryRow(ctx, `SELECT name FROM teams WHERE id = $1 FOR NO KEY UPDATE`, q.TeamID).Scan(&team)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock team: %w", err)
		}
		old, err := teamQuota(ctx, tx, q.TeamID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO team_quotas (team_id, vcpu, memory_mib, vms, disk_gib, updated_by, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, now())
			ON CONFLICT (team_id) DO UPDATE SET vcpu = EXCLUDED.vcpu, memory_mib = EXCLUDED.memory_mib,
				vms = EXCLUDED.vms, disk_gib = EXCLUDED.disk_gib, updated_by = EXCLUDED.updated_by, updated_at = now()`,
			q.TeamID, q.VCPU, q.MemoryMiB, q.VMs, q.DiskGiB, actor.UserID)
		if err != nil {
			return fmt.Errorf("save quota: %w", err)
		}
		used, err := teamUsage(ctx, tx, q.TeamID)
		if err != nil {
			return err
		}
		return s.Audit(ctx, tx, actor, AuditQuotaChange, "team:"+team, map[string]any{
			"before": quotaDetails(old), "after": quotaDetails(q),
			"usage": map[string]int{"vcpu": used.VCPU, "memoryMiB": used.MemoryMiB, "vms": used.VMs, "diskGiB": used.DiskGiB},
		})
	})
}

// AuditQuotaChange is the audit action for a changed team quota.
const AuditQuotaChange = "quota_change"

func quotaDetails(q Quota) map[string]any {
	m := map[string]any{}
	for k, v := range map[string]*int{"vcpu": q.VCPU, "memoryMiB": q.MemoryMiB, "vms": q.VMs, "diskGiB": q.DiskGiB} {
		if v != nil {
			m[k] = *v
		} else {
			m[k] = nil
		}
	}
	return m
}

// quotaCheck loads the quota and usage of a team and says what adding add
// would exceed. It waits for no other change: a concurrent one may take the
// room first, and then the team_usage trigger refuses this change when it
// commits (see quotaRefusal), so the quota holds either way.
func quotaCheck(ctx context.Context, tx pgx.Tx, teamID int64, add Usage) (Quota, []string, error) {
	q, err := teamQuota(ctx, tx, teamID)
	if err != nil || !q.Limited() {
		return q, nil, err
	}
	used, err := teamUsage(ctx, tx, teamID)
	if err != nil {
		return q, nil, err
	}
	return q, q.Blockers(used, add), nil
}

// QuotaMessage is the refusal of a request over its team's quota, e.g.
// "exceeds the quota of team payments: memory 36 GiB of 32 GiB".
func QuotaMessage(team string, blockers []string) string {
	return "exceeds the quota of team " + team + ": " + strings.Join(blockers, "; ")
}

// Preview is what submitting a request would meet, for the request form:
// the team's quota and use, what the request adds, what it would exceed,
// and the policy's decision.
type Preview struct {
	Team     string
	Quota    Quota
	Used     Usage
	Adds     Usage
	Blockers []string
	Decision Decision
}

// PreviewRequest works out, without writing or locking anything, what
// SubmitRequest would decide for a request of size of template by team.
// Submitting decides again, atomically; the preview may be overtaken.
func (s *Store) PreviewRequest(ctx context.Context, teamID int64, template, size string, leaseDays, replicas int) (Preview, error) {
	replicas = min(max(replicas, 1), MaxPoolReplicas)
	var p Preview
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var team Team
		err := tx.QueryRow(ctx, `SELECT id, name, namespace, created_at FROM teams WHERE id = $1`, teamID).
			Scan(&team.ID, &team.Name, &team.Namespace, &team.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("load team: %w", err)
		}
		p.Team = team.Name
		rows, _ := tx.Query(ctx, templateSelect+` WHERE t.name = $1`, template)
		tpl, err := pgx.CollectExactlyOneRow(rows, scanTemplate)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("load template: %w", err)
		}
		sz, ok := tpl.Spec.Size(size)
		if !ok {
			return ErrNotFound
		}
		if p.Quota, err = teamQuota(ctx, tx, teamID); err != nil {
			return err
		}
		if p.Used, err = teamUsage(ctx, tx, teamID); err != nil {
			return err
		}
		p.Adds = UsageOf(tpl.Spec, sz).Times(replicas)
		p.Blockers = p.Quota.Blockers(p.Used, p.Adds)
		rule, err := ruleFor(ctx, tx, teamID, tpl.ID)
		if err != nil {
			return err
		}
		p.Decision = Decide(PolicyInput{Team: team, Template: tpl.Spec, Size: sz, LeaseDays: leaseDays, Quota: p.Quota, Rule: rule,
			Replicas: poolReplicas(replicas > 1, replicas)})
		return nil
	})
	return p, err
}
