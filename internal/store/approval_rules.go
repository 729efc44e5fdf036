package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"sigs.k8s.io/yaml"
)

// ApprovalRule is the platform team's auto-approval policy for a team and a
// template; an empty TeamName or TemplateName means "every". The most
// specific rule that matches a request applies, and only that one: team and
// template, then team, then template, then the default for everyone.
type ApprovalRule struct {
	ID           int64
	TeamID       *int64
	TeamName     string
	TemplateID   *int64
	TemplateName string
	// AutoApprove false sends every request in scope to a person.
	AutoApprove bool
	// MaxSize is the largest size approved without a person, compared by vCPU
	// then memory; "" means no size limit.
	MaxSize   string
	UpdatedBy string
	UpdatedAt time.Time
}

// Scope names what the rule covers, e.g. "team payments, template ubuntu-2404".
func (r ApprovalRule) Scope() string {
	team, tpl := "every team", "every template"
	if r.TeamName != "" {
		team = "team " + r.TeamName
	}
	if r.TemplateName != "" {
		tpl = "template " + r.TemplateName
	}
	return team + ", " + tpl
}

// SizeAtMost reports whether a is no larger than b: by vCPU, then memory.
func SizeAtMost(a, b Size) bool {
	ac, am := a.Resources()
	bc, bm := b.Resources()
	return ac < bc || ac == bc && am <= bm
}

// ResolveSize finds the size named by a rule's limit for template t: one of
// the template's own sizes, or else KubeVirt's common u1 instancetype of that
// name ("medium" is u1.medium), so that one rule can cover many templates.
func ResolveSize(t TemplateSpec, name string) (Size, bool) {
	if s, ok := t.Size(name); ok {
		return s, true
	}
	it := strings.TrimPrefix(name, "u1.")
	if _, ok := u1["u1."+it]; ok {
		return Size{Name: name, Instancetype: "u1." + it}, true
	}
	return Size{}, false
}

const ruleSelect = `
	SELECT ar.id, ar.team_id, coalesce(t.name, ''), ar.template_id, coalesce(tp.name, ''), ar.auto_approve,
	       ar.max_size, coalesce(u.login, ''), ar.updated_at
	FROM approval_rules ar
	LEFT JOIN teams t ON t.id = ar.team_id
	LEFT JOIN templates tp ON tp.id = ar.template_id
	LEFT JOIN users u ON u.id = ar.updated_by`

func scanRule(row pgx.CollectableRow) (ApprovalRule, error) {
	var r ApprovalRule
	err := row.Scan(&r.ID, &r.TeamID, &r.TeamName, &r.TemplateID, &r.TemplateName, &r.AutoApprove, &r.MaxSize,
		&r.UpdatedBy, &r.UpdatedAt)
	return r, err
}

// ruleFor returns the most specific rule for a team and template, or nil.
func ruleFor(ctx context.Context, tx pgx.Tx, teamID, templateID int64) (*ApprovalRule, error) {
	rows, _ := tx.Query(ctx, ruleSelect+`
		WHERE (ar.team_id = $1 OR ar.team_id IS NULL) AND (ar.template_id = $2 OR ar.template_id IS NULL)
		ORDER BY ar.team_id IS NULL, ar.template_id IS NULL LIMIT 1`, teamID, templateID)
	r, err := pgx.CollectExactlyOneRow(rows, scanRule)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("approval rule: %w", err)
	}
	return &r, nil
}

// ApprovalRules lists every rule, the most general first.
func (s *Store) ApprovalRules(ctx context.Context) ([]ApprovalRule, error) {
	rows, _ := s.pool.Query(ctx, ruleSelect+` ORDER BY ar.team_id IS NOT NULL, t.name NULLS FIRST, ar.template_id IS NOT NULL, tp.name NULLS FIRST`)
	rs, err := pgx.CollectRows(rows, scanRule)
	if err != nil {
		return nil, fmt.Errorf("list approval rules: %w", err)
	}
	return rs, nil
}

// RuleInput is an approval rule as the editor and the YAML file give it,
// naming team and template ("" for every).
type RuleInput struct {
	Team     string `json:"team,omitempty"`
	Template string `json:"template,omitempty"`
	// AutoApprove defaults to true when left out of a file.
	AutoApprove *bool  `json:"autoApprove,omitempty"`
	MaxSize     string `json:"maxSize,omitempty"`
}

func (in RuleInput) auto() bool { return in.AutoApprove == nil || *in.AutoApprove }

// AuditRuleChange is the audit action for a created, changed or deleted approval rule.
const AuditRuleChange = "approval_rule_change"

// resolveRule checks a rule's names against the database and returns the
// ids, adding problems to v under prefix (e.g. "rules[2].").
func resolveRule(ctx context.Context, tx pgx.Tx, in RuleInput, v *ValidationError, prefix string) (teamID, tplID *int64) {
	if in.Team != "" {
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM teams WHERE name = $1`, in.Team).Scan(&id)
		if err != nil {
			v.Add(prefix+"team", "no team named %q", in.Team)
		} else {
			teamID = &id
		}
	}
	var spec *TemplateSpec
	if in.Template != "" {
		rows, _ := tx.Query(ctx, templateSelect+` WHERE t.name = $1`, in.Template)
		t, err := pgx.CollectExactlyOneRow(rows, scanTemplate)
		if err != nil {
			v.Add(prefix+"template", "no template named %q", in.Template)
		} else {
			tplID, spec = &t.ID, &t.Spec
		}
	}
	if in.MaxSize != "" {
		ok := false
		if spec != nil {
			_, ok = ResolveSize(*spec, in.MaxSize)
		} else if _, ok = ResolveSize(TemplateSpec{}, in.MaxSize); !ok {
			// A rule for every template may name a size some templates have.
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM templates t
				JOIN template_versions v ON v.template_id = t.id AND v.version = t.current_version,
				jsonb_array_elements(v.spec->'sizes') sz WHERE t.retired_at IS NULL AND sz->>'name' = $1)`, in.MaxSize).Scan(&ok)
			if err != nil {
				v.Add(prefix+"maxSize", "could not be checked")
			}
		}
		if !ok {
			what := "a size of some template, or a KubeVirt u1 size (nano, micro, small, medium, large, xlarge, 2xlarge)"
			if spec != nil {
				names := make([]string, len(spec.Sizes))
				for i, s := range spec.Sizes {
					names[i] = s.Name
				}
				what = "one of the template's sizes (" + strings.Join(names, ", ") + ") or " + what
			}
			v.Add(prefix+"maxSize", "%q is not a size: use %s", in.MaxSize, what)
		}
	}
	return teamID, tplID
}

// SetApprovalRule creates the rule for its team and template, or replaces it.
func (s *Store) SetApprovalRule(ctx context.Context, in RuleInput, actor Actor) error {
	in.MaxSize = strings.TrimSpace(in.MaxSize)
	return s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := s.setRule(ctx, tx, in, actor, "", false)
		return err
	})
}

// setRule upserts one rule and says what it did: "created", "updated" or "unchanged".
func (s *Store) setRule(ctx context.Context, tx pgx.Tx, in RuleInput, actor Actor, prefix string, dry bool) (string, error) {
	v := &ValidationError{}
	teamID, tplID := resolveRule(ctx, tx, in, v, prefix)
	if err := v.OrNil(); err != nil {
		return "", err
	}
	var oldAuto bool
	var oldMax string
	err := tx.QueryRow(ctx, `SELECT auto_approve, max_size FROM approval_rules
		WHERE team_id IS NOT DISTINCT FROM $1 AND template_id IS NOT DISTINCT FROM $2 FOR UPDATE`, teamID, tplID).
		Scan(&oldAuto, &oldMax)
	what := "updated"
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		what = "created"
	case err != nil:
		return "", fmt.Errorf("load approval rule: %w", err)
	case oldAuto == in.auto() && oldMax == in.MaxSize:
		return "unchanged", nil
	}
	if dry {
		return what, nil
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO approval_rules (team_id, template_id, auto_approve, max_size, updated_by)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (team_id, template_id) DO UPDATE SET auto_approve = EXCLUDED.auto_approve,
			max_size = EXCLUDED.max_size, updated_by = EXCLUDED.updated_by, updated_at = now()`,
		teamID, tplID, in.auto(), in.MaxSize, actor.UserID)
	if err != nil {
		return "", fmt.Errorf("save approval rule: %w", err)
	}
	r := ApprovalRule{TeamName: in.Team, TemplateName: in.Template}
	return what, s.Audit(ctx, tx, actor, AuditRuleChange, "approval-rule:"+r.Scope(), map[string]any{
		"change": what, "autoApprove": in.auto(), "maxSize": in.MaxSize})
}

// DeleteApprovalRule removes a rule.
func (s *Store) DeleteApprovalRule(ctx context.Context, id int64, actor Actor) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, ruleSelect+` WHERE ar.id = $1`, id)
		r, err := pgx.CollectExactlyOneRow(rows, scanRule)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("load approval rule: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM approval_rules WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete approval rule: %w", err)
		}
		return s.Audit(ctx, tx, actor, AuditRuleChange, "approval-rule:"+r.Scope(), map[string]any{"change": "deleted"})
	})
}

// RuleChange is what applying a rules file did (or would do) to one rule.
type RuleChange struct {
	Scope string
	// Change is "created", "updated", "unchanged" or "deleted".
	Change string
}

// ApplyApprovalRules sets every rule in one transaction: all or nothing.
// With prune, rules not in the list are deleted, so the list becomes the
// whole policy. With dryRun nothing is written.
func (s *Store) ApplyApprovalRules(ctx context.Context, rules []RuleInput, prune, dryRun bool, actor Actor) ([]RuleChange, error) {
	var out []RuleChange
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		v := &ValidationError{}
		seen := map[[2]string]bool{}
		for i, in := range rules {
			in.MaxSize = strings.TrimSpace(in.MaxSize)
			scope := ApprovalRule{TeamName: in.Team, TemplateName: in.Template}.Scope()
			key := [2]string{in.Team, in.Template}
			if seen[key] {
				v.Add(fmt.Sprintf("rules[%d]", i), "a second rule for %s", scope)
				continue
			}
			seen[key] = true
			what, err := s.setRule(ctx, tx, in, actor, fmt.Sprintf("rules[%d].", i), dryRun)
			var ve *ValidationError
			if errors.As(err, &ve) {
				v.Fields = append(v.Fields, ve.Fields...)
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, RuleChange{Scope: scope, Change: what})
		}
		if err := v.OrNil(); err != nil {
			return err
		}
		if !prune {
			return nil
		}
		existing, err := collectRules(ctx, tx)
		if err != nil {
			return err
		}
		for _, r := range existing {
			if seen[[2]string{r.TeamName, r.TemplateName}] {
				continue
			}
			out = append(out, RuleChange{Scope: r.Scope(), Change: "deleted"})
			if dryRun {
				continue
			}
			if _, err := tx.Exec(ctx, `DELETE FROM approval_rules WHERE id = $1`, r.ID); err != nil {
				return fmt.Errorf("delete approval rule: %w", err)
			}
			if err := s.Audit(ctx, tx, actor, AuditRuleChange, "approval-rule:"+r.Scope(), map[string]any{"change": "deleted"}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func collectRules(ctx context.Context, tx pgx.Tx) ([]ApprovalRule, error) {
	rows, _ := tx.Query(ctx, ruleSelect)
	rs, err := pgx.CollectRows(rows, scanRule)
	if err != nil {
		return nil, fmt.Errorf("list approval rules: %w", err)
	}
	return rs, nil
}

// ApprovalRulesFile is the policy-as-code format, kept beside the templates:
//
//	rules:
//	  - team: payments        # leave out for every team
//	    template: ubuntu-2404 # leave out for every template
//	    autoApprove: true     # false: every request in scope needs a person
//	    maxSize: medium       # largest size approved without a person
type ApprovalRulesFile struct {
	Rules []RuleInput `json:"rules"`
}

// ParseApprovalRulesYAML reads an approval rules file. Unknown fields are
// errors that name the file.
func ParseApprovalRulesYAML(file string, data []byte) ([]RuleInput, error) {
	var f ApprovalRulesFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "error unmarshaling JSON: while decoding JSON: "))
	}
	if f.Rules == nil {
		return nil, fmt.Errorf("%s: holds no rules (expected a top-level \"rules:\" list)", file)
	}
	return f.Rules, nil
}

// ApprovalRulesYAML writes rules in the file format, most general first.
func ApprovalRulesYAML(rules []ApprovalRule) ([]byte, error) {
	f := ApprovalRulesFile{Rules: []RuleInput{}}
	for _, r := range rules {
		auto := r.AutoApprove
		f.Rules = append(f.Rules, RuleInput{Team: r.TeamName, Template: r.TemplateName, AutoApprove: &auto, MaxSize: r.MaxSize})
	}
	slices.SortStableFunc(f.Rules, func(a, b RuleInput) int {
		return strings.Compare(a.Team+"\x00"+a.Template, b.Team+"\x00"+b.Template)
	})
	return yaml.Marshal(f)
}
