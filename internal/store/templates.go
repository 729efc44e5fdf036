package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// TemplateSpec is one version of a template as the platform team writes it,
// in the database (jsonb) and in templates-as-code YAML alike.
type TemplateSpec struct {
	Name         string      `json:"name"`
	DisplayName  string      `json:"displayName"`
	Description  string      `json:"description,omitempty"`
	OSFamily     string      `json:"osFamily"`
	Logo         string      `json:"logo,omitempty"`
	Tags         []string    `json:"tags,omitempty"`
	Image        ImageSource `json:"image"`
	Sizes        []Size      `json:"sizes"`
	RootDiskGiB  int         `json:"rootDiskGiB,omitempty"`
	SSHUser      string      `json:"sshUser"`
	CloudInit    string      `json:"cloudInit,omitempty"`
	Teams        []string    `json:"teams,omitempty"`
	MaxLeaseDays int         `json:"maxLeaseDays"`
	AutoApprove  bool        `json:"autoApprove"`
	// MaxAutoReplicas is the largest pool of this template that policy
	// approves without a person (when it approves the template at all); 0
	// means DefaultMaxAutoReplicas.
	MaxAutoReplicas int `json:"maxAutoReplicas,omitempty"`
}

// AutoApproveReplicas is the largest pool policy approves by itself.
func (t TemplateSpec) AutoApproveReplicas() int {
	if t.MaxAutoReplicas > 0 {
		return t.MaxAutoReplicas
	}
	return DefaultMaxAutoReplicas
}

// ImageSource says where a VM's root disk comes from; exactly one field is set.
type ImageSource struct {
	// ContainerDisk is an ephemeral container-disk image, e.g. quay.io/containerdisks/ubuntu:24.04.
	ContainerDisk string `json:"containerDisk,omitempty"`
	// Registry is a DataVolume import from a registry, e.g. docker://quay.io/containerdisks/fedora:41.
	Registry string `json:"registry,omitempty"`
	// HTTP is a DataVolume import from an HTTP(S) URL of a disk image.
	HTTP string `json:"http,omitempty"`
	// DataSource clones a golden image published as a CDI DataSource.
	DataSource *DataSourceRef `json:"dataSource,omitempty"`
}

// DataSourceRef names a CDI DataSource.
type DataSourceRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Kind names the image source kind for display and rendering.
func (i ImageSource) Kind() string {
	switch {
	case i.ContainerDisk != "":
		return "containerDisk"
	case i.Registry != "":
		return "registry"
	case i.HTTP != "":
		return "http"
	case i.DataSource != nil:
		return "dataSource"
	}
	return ""
}

// Ephemeral reports whether the root disk is lost when the VM is recreated.
func (i ImageSource) Ephemeral() bool { return i.ContainerDisk != "" }

// Size is one choice of compute for a template: an instancetype/preference
// pair, or explicit vCPU and memory.
type Size struct {
	Name         string `json:"name"`
	Instancetype string `json:"instancetype,omitempty"`
	Preference   string `json:"preference,omitempty"`
	CPU          int    `json:"cpu,omitempty"`
	MemoryMiB    int    `json:"memoryMiB,omitempty"`
}

// u1 holds the compute of KubeVirt's common u1 cluster instancetypes, so that
// quotas can count sizes that only name one.
var u1 = map[string][2]int{
	"u1.nano":    {1, 512},
	"u1.micro":   {1, 1024},
	"u1.small":   {1, 2048},
	"u1.medium":  {1, 4096},
	"u1.large":   {2, 8192},
	"u1.xlarge":  {4, 16384},
	"u1.2xlarge": {8, 32768},
}

// KnownInstancetypes lists the u1 instancetypes whose compute Paddock knows,
// smallest first, for forms to suggest.
func KnownInstancetypes() []string {
	names := make([]string, 0, len(u1))
	for n := range u1 {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := u1[names[i]], u1[names[j]]
		return a[1] < b[1] || a[1] == b[1] && a[0] < b[0]
	})
	return names
}

// Resources returns the vCPU and memory (MiB) the size gives a VM.
func (s Size) Resources() (cpu, memMiB int) {
	if s.CPU > 0 && s.MemoryMiB > 0 {
		return s.CPU, s.MemoryMiB
	}
	r := u1[s.Instancetype]
	return r[0], r[1]
}

// Size returns the named size.
func (t TemplateSpec) Size(name string) (Size, bool) {
	i := slices.IndexFunc(t.Sizes, func(s Size) bool { return s.Name == name })
	if i < 0 {
		return Size{}, false
	}
	return t.Sizes[i], true
}

// AllowsTeam reports whether members of team may use the template.
func (t TemplateSpec) AllowsTeam(team string) bool {
	return len(t.Teams) == 0 || slices.Contains(t.Teams, team)
}

// Template is a template with its current version.
type Template struct {
	ID              int64
	Name            string
	Version         int
	Spec            TemplateSpec
	DeprecatedAt    *time.Time
	DeprecationNote string
	RetiredAt       *time.Time
	PublishedAt     time.Time
}

// Status names where the template is in its life: active, deprecated or retired.
func (t Template) Status() string {
	switch {
	case t.RetiredAt != nil:
		return "retired"
	case t.DeprecatedAt != nil:
		return "deprecated"
	}
	return "active"
}

// TemplateVersion is one immutable version of a template.
type TemplateVersion struct {
	TemplateID int64
	Version    int
	Spec       TemplateSpec
	CreatedAt  time.Time
	// CreatedBy is the publisher's login, or "" when published by a tool
	// (portal dev, or templates apply without --user).
	CreatedBy string
	// Note says why the version was published, in the publisher's words.
	Note string
	// WithdrawnAt is set when the platform team withdrew the version: it
	// builds no more VMs. WithdrawnBy (a login) and WithdrawnNote say who
	// and why.
	WithdrawnAt   *time.Time
	WithdrawnBy   string
	WithdrawnNote string
}

// Withdrawn reports whether the version was withdrawn.
func (tv TemplateVersion) Withdrawn() bool { return tv.WithdrawnAt != nil }

// MaxVersionNoteLen bounds the note published with a version.
const MaxVersionNoteLen = 500

// Publish is one template to publish, with who publishes it and why.
type Publish struct {
	Spec  TemplateSpec
	Actor Actor
	Note  string
	// Base is the version the editor started from. When it is set and no
	// longer current, nothing is published and an error wrapping ErrConflict
	// is returned, so that one person's edit does not silently undo another's.
	Base int
	// New requires that no template of that name exists yet (create, clone).
	New bool
}

// PublishResult says what publishing did, or in a dry run would do.
type PublishResult struct {
	Name string
	// Version is the version current afterwards.
	Version int
	// Previous is the version current before; 0 for a new template.
	Previous int
	// Changed reports whether a new version was (or would be) published.
	Changed bool
	// Fields lists the top-level spec fields that differ from Previous.
	Fields []string
	// Old is the spec of Previous, for showing a diff; zero for a new template.
	Old TemplateSpec
}

// Created reports whether the template is new.
func (r PublishResult) Created() bool { return r.Changed && r.Previous == 0 }

// TemplateTarget is the audit target naming a template.
func TemplateTarget(name string) string { return "template:" + name }

// PublishTemplate creates the template or publishes a new version of it when
// the spec differs from the current version. It reports the version now
// current and whether a new one was published.
func (s *Store) PublishTemplate(ctx context.Context, spec TemplateSpec, actorID *int64) (version int, changed bool, err error) {
	actor := Actor{UserID: actorID, Name: "system"}
	if actorID != nil {
		if u, err := s.UserByID(ctx, *actorID); err == nil {
			actor = UserActor(u)
		}
	}
	res, err := s.PublishTemplateChange(ctx, Publish{Spec: spec, Actor: actor})
	return res.Version, res.Changed, err
}

// PublishTemplateChange publishes one template in its own transaction; see
// Publish for the checks it makes. An invalid spec returns a *ValidationError.
func (s *Store) PublishTemplateChange(ctx context.Context, p Publish) (PublishResult, error) {
	var res PublishResult
	err := s.inTx(ctx, func(tx pgx.Tx) (err error) {
		res, err = s.publish(ctx, tx, p, false)
		return err
	})
	return res, err
}

// ApplyTemplates publishes every spec in one transaction: either all of them
// are applied or, on any error, none. Specs equal to their current version
// publish nothing. With dryRun it writes nothing and reports what it would do.
// Errors name the template; a *ValidationError names its fields.
func (s *Store) ApplyTemplates(ctx context.Context, specs []TemplateSpec, actor Actor, note string, dryRun bool) ([]PublishResult, error) {
	seen := map[string]bool{}
	for _, sp := range specs {
		if seen[sp.Name] {
			return nil, fmt.Errorf("template %q is given twice", sp.Name)
		}
		seen[sp.Name] = true
	}
	// Lock in name order, so that concurrent applies cannot deadlock.
	sorted := slices.Clone(specs)
	slices.SortFunc(sorted, func(a, b TemplateSpec) int { return strings.Compare(a.Name, b.Name) })
	var out []PublishResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		for _, sp := range sorted {
			res, err := s.publish(ctx, tx, Publish{Spec: sp, Actor: actor, Note: note}, dryRun)
			if err != nil {
				return fmt.Errorf("template %s: %w", sp.Name, err)
			}
			out = append(out, res)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// publish does the work of one publish inside tx. With dry it only reads.
func (s *Store) publish(ctx context.Context, tx pgx.Tx, p Publish, dry bool) (PublishResult, error) {
	res := PublishResult{Name: p.Spec.Name}
	verr := &ValidationError{}
	if err := p.Spec.Validate(); err != nil {
		if !errors.As(err, &verr) {
			return res, err
		}
	}
	p.Note = strings.TrimSpace(p.Note)
	if len(p.Note) > MaxVersionNoteLen {
		verr.Add("note", "must be at most %d characters", MaxVersionNoteLen)
	}
	if len(verr.Fields) > 0 {
		return res, verr
	}
	var id int64
	var cur int
	var retired *time.Time
	lock := func() error {
		return tx.QueryRow(ctx, `SELECT id, current_version, retired_at FROM templates WHERE name = $1 FOR UPDATE`,
			p.Spec.Name).Scan(&id, &cur, &retired)
	}
	err := lock()
	if errors.Is(err, pgx.ErrNoRows) && !dry {
		err = tx.QueryRow(ctx, `INSERT INTO templates (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id, current_version, retired_at`,
			p.Spec.Name).Scan(&id, &cur, &retired)
		if errors.Is(err, pgx.ErrNoRows) { // created meanwhile by someone else
			err = lock()
		}
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows) && dry:
		res.Version, res.Changed, res.Fields = 1, true, []string{"(new template)"}
		return res, nil
	case err != nil:
		return res, fmt.Errorf("lock template %s: %w", p.Spec.Name, err)
	}
	res.Previous, res.Version = cur, cur
	switch {
	case p.New && cur > 0:
		verr.Add("name", "a template named %q already exists; choose another name, or edit that template", p.Spec.Name)
		return res, verr
	case retired != nil:
		verr.Add("name", "template %q is retired; restore it on its page before publishing a new version", p.Spec.Name)
		return res, verr
	case p.Base != 0 && p.Base != cur:
		return res, conflictf("template %s is now at version %d; you edited version %d", p.Spec.Name, cur, p.Base)
	}
	if cur > 0 {
		old, err := versionSpec(ctx, tx, id, cur)
		if err != nil {
			return res, err
		}
		res.Old = old
		res.Fields = ChangedFields(old, p.Spec)
		if len(res.Fields) == 0 {
			return res, nil
		}
	}
	res.Version, res.Changed = cur+1, true
	if dry {
		return res, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO template_versions (template_id, version, spec, created_by, note) VALUES ($1, $2, $3, $4, $5)`,
		id, res.Version, p.Spec, p.Actor.UserID, p.Note); err != nil {
		return res, fmt.Errorf("insert version: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE templates SET current_version = $2 WHERE id = $1`, id, res.Version); err != nil {
		return res, fmt.Errorf("bump version: %w", err)
	}
	change := "publish"
	if res.Previous == 0 {
		change = "create"
	}
	details := map[string]any{"change": change, "version": res.Version, "previous": res.Previous}
	if len(res.Fields) > 0 {
		details["fields"] = res.Fields
	}
	if p.Note != "" {
		details["note"] = p.Note
	}
	if err := s.auditTemplate(ctx, tx, p.Actor, p.Spec.Name, details); err != nil {
		return res, err
	}
	return res, nil
}

// auditTemplate records a template change in the audit log, in the
// transaction that makes it.
func (s *Store) auditTemplate(ctx context.Context, tx pgx.Tx, actor Actor, name string, details map[string]any) error {
	return s.Audit(ctx, tx, actor, AuditTemplateChange, TemplateTarget(name), details)
}

func versionSpec(ctx context.Context, tx pgx.Tx, id int64, version int) (TemplateSpec, error) {
	var raw []byte
	var sp TemplateSpec
	if err := tx.QueryRow(ctx, `SELECT spec FROM template_versions WHERE template_id = $1 AND version = $2`, id, version).Scan(&raw); err != nil {
		return sp, fmt.Errorf("load version %d of template %d: %w", version, id, err)
	}
	if err := json.Unmarshal(raw, &sp); err != nil {
		return sp, fmt.Errorf("decode version %d of template %d: %w", version, id, err)
	}
	return sp, nil
}

// ChangedFields lists the top-level fields (by their YAML names) in which two
// specs differ, in the order of the spec; nil when they publish the same version.
func ChangedFields(a, b TemplateSpec) []string {
	ma, mb := specMap(a), specMap(b)
	var out []string
	t := reflect.TypeFor[TemplateSpec]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if !reflect.DeepEqual(ma[name], mb[name]) {
			out = append(out, name)
		}
	}
	return out
}

func specMap(t TemplateSpec) map[string]any {
	b, _ := json.Marshal(t)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// SameSpec reports whether two specs would publish the same version.
func SameSpec(a, b TemplateSpec) bool { return len(ChangedFields(a, b)) == 0 }

const templateSelect = `
	SELECT t.id, t.name, t.current_version, v.spec, t.deprecated_at, t.deprecation_note, t.retired_at, v.created_at
	FROM templates t JOIN template_versions v ON v.template_id = t.id AND v.version = t.current_version`

func scanTemplate(row pgx.CollectableRow) (Template, error) {
	var t Template
	var raw []byte
	if err := row.Scan(&t.ID, &t.Name, &t.Version, &raw, &t.DeprecatedAt, &t.DeprecationNote, &t.RetiredAt, &t.PublishedAt); err != nil {
		return t, err
	}
	if err := json.Unmarshal(raw, &t.Spec); err != nil {
		return t, fmt.Errorf("decode spec of %s: %w", t.Name, err)
	}
	return t, nil
}

// Templates lists current versions of every template that is not retired,
// deprecated ones included, by display name. Specs come from the store's
// cache of decoded versions where it has them (see specCache).
func (s *Store) Templates(ctx context.Context) ([]Template, error) {
	return s.catalog.templates.get(ctx, cloneTemplates, func(ctx context.Context) ([]Template, int64, bool, error) {
		rows, _ := s.pool.Query(ctx, `
		SELECT t.id, t.name, t.current_version, t.deprecated_at, t.deprecation_note, t.retired_at, v.created_at, `+catalogVersionColumn+`
		FROM templates t JOIN template_versions v ON v.template_id = t.id AND v.version = t.current_version
		WHERE t.retired_at IS NULL ORDER BY v.spec->>'displayName', t.name`)
		var at int64
		ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Template, error) {
			var t Template
			err := row.Scan(&t.ID, &t.Name, &t.Version, &t.DeprecatedAt, &t.DeprecationNote, &t.RetiredAt, &t.PublishedAt, &at)
			return t, err
		})
		if err != nil {
			return nil, 0, false, fmt.Errorf("list templates: %w", err)
		}
		if err := s.specs.fill(ctx, s.pool, ts); err != nil {
			return nil, 0, false, fmt.Errorf("list templates: %w", err)
		}
		return ts, at, len(ts) > 0, nil
	})
}

// TemplateByName returns the current version of the named template, retired
// or not.
func (s *Store) TemplateByName(ctx context.Context, name string) (Template, error) {
	rows, _ := s.pool.Query(ctx, templateSelect+` WHERE t.name = $1`, name)
	t, err := pgx.CollectExactlyOneRow(rows, scanTemplate)
	if errors.Is(err, pgx.ErrNoRows) {
		return Template{}, ErrNotFound
	}
	if err != nil {
		return Template{}, fmt.Errorf("template %q: %w", name, err)
	}
	return t, nil
}

const versionSelect = `
	SELECT v.template_id, v.version, v.spec, v.created_at, coalesce(u.login, ''), v.note,
	       w.withdrawn_at, coalesce(wu.login, ''), coalesce(w.note, '')
	FROM template_versions v LEFT JOIN users u ON u.id = v.created_by
	LEFT JOIN template_withdrawals w ON w.template_id = v.template_id AND w.version = v.version
	LEFT JOIN users wu ON wu.id = w.withdrawn_by`

func scanVersion(row pgx.CollectableRow) (TemplateVersion, error) {
	var tv TemplateVersion
	var raw []byte
	if err := row.Scan(&tv.TemplateID, &tv.Version, &raw, &tv.CreatedAt, &tv.CreatedBy, &tv.Note,
		&tv.WithdrawnAt, &tv.WithdrawnBy, &tv.WithdrawnNote); err != nil {
		return tv, err
	}
	if err := json.Unmarshal(raw, &tv.Spec); err != nil {
		return tv, fmt.Errorf("decode template version %d/%d: %w", tv.TemplateID, tv.Version, err)
	}
	return tv, nil
}

// TemplateVersion returns one pinned version.
func (s *Store) TemplateVersion(ctx context.Context, templateID int64, version int) (TemplateVersion, error) {
	rows, _ := s.pool.Query(ctx, versionSelect+` WHERE v.template_id = $1 AND v.version = $2`, templateID, version)
	tv, err := pgx.CollectExactlyOneRow(rows, scanVersion)
	if errors.Is(err, pgx.ErrNoRows) {
		return tv, ErrNotFound
	}
	if err != nil {
		return tv, fmt.Errorf("template version %d/%d: %w", templateID, version, err)
	}
	return tv, nil
}

// TemplateVersions returns every version of a template, newest first.
func (s *Store) TemplateVersions(ctx context.Context, templateID int64) ([]TemplateVersion, error) {
	rows, _ := s.pool.Query(ctx, versionSelect+` WHERE v.template_id = $1 ORDER BY v.version DESC`, templateID)
	tvs, err := pgx.CollectRows(rows, scanVersion)
	if err != nil {
		return nil, fmt.Errorf("versions of template %d: %w", templateID, err)
	}
	return tvs, nil
}

// liveStates are the request states that have, or will have, a VM.
const liveStates = `('pending_approval', 'approved', 'provisioning', 'running', 'stopped', 'failed', 'expired')`

// TemplateSummary is a template as the platform team's list shows it.
type TemplateSummary struct {
	Template
	// VMs counts requests that have or will have a VM, on any version.
	VMs int
	// Outdated counts those of them pinned to a version older than the current one.
	Outdated int
}

// TemplateSummaries lists every template, retired ones included, with how
// many VMs use it, by display name.
func (s *Store) TemplateSummaries(ctx context.Context) ([]TemplateSummary, error) {
	rows, _ := s.pool.Query(ctx, `
		WITH use AS (
			SELECT r.template_id, count(*) AS vms,
			       count(*) FILTER (WHERE r.template_version < t.current_version) AS outdated
			FROM requests r JOIN templates t ON t.id = r.template_id
			WHERE r.state IN `+liveStates+`
			GROUP BY r.template_id)
		SELECT t.id, t.name, t.current_version, v.spec, t.deprecated_at, t.deprecation_note, t.retired_at, v.created_at,
		       coalesce(use.vms, 0), coalesce(use.outdated, 0)
		FROM templates t JOIN template_versions v ON v.template_id = t.id AND v.version = t.current_version
		LEFT JOIN use ON use.template_id = t.id
		ORDER BY v.spec->>'displayName', t.name`)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TemplateSummary, error) {
		var ts TemplateSummary
		var raw []byte
		err := row.Scan(&ts.ID, &ts.Name, &ts.Version, &raw, &ts.DeprecatedAt, &ts.DeprecationNote, &ts.RetiredAt,
			&ts.PublishedAt, &ts.VMs, &ts.Outdated)
		if err != nil {
			return ts, err
		}
		if err := json.Unmarshal(raw, &ts.Spec); err != nil {
			return ts, fmt.Errorf("decode spec of %s: %w", ts.Name, err)
		}
		return ts, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list template summaries: %w", err)
	}
	return out, nil
}

// VersionUsage counts the VMs (requests that have or will have one) pinned
// to one version of a template.
type VersionUsage struct {
	Version int
	VMs     int
	Running int
}

// TemplateUsage returns, per version, how many VMs use the template; versions
// with none are left out.
func (s *Store) TemplateUsage(ctx context.Context, templateID int64) (map[int]VersionUsage, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT template_version, count(*), count(*) FILTER (WHERE state = 'running')
		FROM requests WHERE template_id = $1 AND state IN `+liveStates+`
		GROUP BY template_version`, templateID)
	us, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (VersionUsage, error) {
		var u VersionUsage
		return u, row.Scan(&u.Version, &u.VMs, &u.Running)
	})
	if err != nil {
		return nil, fmt.Errorf("usage of template %d: %w", templateID, err)
	}
	out := make(map[int]VersionUsage, len(us))
	for _, u := range us {
		out[u.Version] = u
	}
	return out, nil
}

// TemplateState is what a page showing an existing VM needs to know about its
// template now: the current version and whether it is deprecated.
type TemplateState struct {
	Name            string
	Current         int
	Deprecated      bool
	DeprecationNote string
	Retired         bool
}

// TemplateStates returns the state of every template, by id.
func (s *Store) TemplateStates(ctx context.Context) (map[int64]TemplateState, error) {
	return s.catalog.states.get(ctx, maps.Clone, func(ctx context.Context) (map[int64]TemplateState, int64, bool, error) {
		rows, _ := s.pool.Query(ctx, `SELECT id, name, current_version, deprecated_at IS NOT NULL, deprecation_note, retired_at IS NOT NULL, `+
			catalogVersionColumn+` FROM templates`)
		out := map[int64]TemplateState{}
		var id, at int64
		var st TemplateState
		_, err := pgx.ForEachRow(rows, []any{&id, &st.Name, &st.Current, &st.Deprecated, &st.DeprecationNote, &st.Retired, &at}, func() error {
			out[id] = st
			return nil
		})
		if err != nil {
			return nil, 0, false, fmt.Errorf("template states: %w", err)
		}
		return out, at, len(out) > 0, nil
	})
}

// MaxDeprecationNoteLen bounds the note shown to developers on a deprecated template.
const MaxDeprecationNoteLen = 500

// DeprecateTemplate hides the template from new requests; existing VMs keep
// it, and their pages show note. Deprecating again replaces the note. A
// missing or too long note is a *ValidationError naming "note".
func (s *Store) DeprecateTemplate(ctx context.Context, name, note string, actor Actor) error {
	note = strings.TrimSpace(note)
	v := &ValidationError{}
	switch {
	case note == "":
		v.Add("note", "is required: tell developers why, and what to use instead")
	case len(note) > MaxDeprecationNoteLen:
		v.Add("note", "must be at most %d characters", MaxDeprecationNoteLen)
	}
	if err := v.OrNil(); err != nil {
		return err
	}
	return s.changeTemplate(ctx, name, actor, func(tx pgx.Tx, t lifecycle) (map[string]any, error) {
		if t.retired {
			return nil, conflictf("template %s is retired; restore it first", name)
		}
		if _, err := tx.Exec(ctx, `UPDATE templates SET deprecated_at = coalesce(deprecated_at, now()), deprecation_note = $2 WHERE id = $1`,
			t.id, note); err != nil {
			return nil, fmt.Errorf("deprecate template %s: %w", name, err)
		}
		return map[string]any{"change": "deprecate", "note": note}, nil
	})
}

// RetireTemplate removes a deprecated template from every list; VMs made
// from it keep their pinned version. It returns ErrConflict unless the
// template is deprecated.
func (s *Store) RetireTemplate(ctx context.Context, name string, actor Actor) error {
	return s.changeTemplate(ctx, name, actor, func(tx pgx.Tx, t lifecycle) (map[string]any, error) {
		switch {
		case t.retired:
			return nil, conflictf("template %s is already retired", name)
		case !t.deprecated:
			return nil, conflictf("deprecate template %s first, so that developers see why it goes", name)
		}
		if _, err := tx.Exec(ctx, `UPDATE templates SET retired_at = now() WHERE id = $1`, t.id); err != nil {
			return nil, fmt.Errorf("retire template %s: %w", name, err)
		}
		return map[string]any{"change": "retire"}, nil
	})
}

// RestoreTemplate makes a deprecated or retired template available for new
// requests again. It returns ErrConflict when the template is active.
func (s *Store) RestoreTemplate(ctx context.Context, name string, actor Actor) error {
	return s.changeTemplate(ctx, name, actor, func(tx pgx.Tx, t lifecycle) (map[string]any, error) {
		if !t.deprecated && !t.retired {
			return nil, conflictf("template %s is not deprecated", name)
		}
		if _, err := tx.Exec(ctx, `UPDATE templates SET deprecated_at = NULL, deprecation_note = '', retired_at = NULL WHERE id = $1`, t.id); err != nil {
			return nil, fmt.Errorf("restore template %s: %w", name, err)
		}
		return map[string]any{"change": "restore"}, nil
	})
}

// MaxWithdrawNoteLen bounds the note that says why a version was withdrawn.
const MaxWithdrawNoteLen = 500

// WithdrawVersion withdraws one version of a template: from now on it
// builds no VM — no rebuild or rollout pins to it, a request pinned to it
// while waiting for approval is not approved, a pool on it does not grow —
// and every refusal quotes note. VMs already on it keep running (their
// owners rebuild them to another version). The current version cannot be
// withdrawn, since new requests use it: publish a fixed version first, or
// deprecate the template. Nor can the target of a rollout under way: cancel
// the rollout first. Both are errors wrapping ErrConflict; a missing or too
// long note is a *ValidationError naming "note", an unknown version
// ErrNotFound.
//
// Withdrawing is reversible (ReinstateVersion): a version's spec never
// changes, so reinstating one withdrawn by mistake gives back exactly what
// was published, where republishing it would make a new version that VMs on
// the old one count as outdated.
func (s *Store) WithdrawVersion(ctx context.Context, name string, version int, note string, actor Actor) error {
	note = strings.TrimSpace(note)
	v := &ValidationError{}
	switch {
	case note == "":
		v.Add("note", "is required: say why the version must build no more VMs")
	case len(note) > MaxWithdrawNoteLen:
		v.Add("note", "must be at most %d characters", MaxWithdrawNoteLen)
	}
	if err := v.OrNil(); err != nil {
		return err
	}
	return s.changeTemplate(ctx, name, actor, func(tx pgx.Tx, t lifecycle) (map[string]any, error) {
		withdrawn, _, err := withdrawal(ctx, tx, t.id, version)
		if err != nil {
			return nil, err
		}
		switch {
		case withdrawn:
			return nil, conflictf("%s v%d is already withdrawn", name, version)
		case version == t.current:
			return nil, conflictf("v%d is the current version of %s, which new requests use: publish a fixed version "+
				"(or republish an older one) first, then withdraw v%d; to stop new VMs of %s altogether, deprecate it",
				version, name, version, name)
		}
		var rollout int64
		err = tx.QueryRow(ctx, `SELECT id FROM rollouts WHERE template_id = $1 AND target_version = $2 AND state IN ('running', 'paused')`,
			t.id, version).Scan(&rollout)
		if err == nil {
			return nil, conflictf("rollout #%d is moving VMs of %s to v%d; cancel it first", rollout, name, version)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("rollout to %s v%d: %w", name, version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO template_withdrawals (template_id, version, withdrawn_by, note) VALUES ($1, $2, $3, $4)`,
			t.id, version, actor.UserID, note); err != nil {
			return nil, fmt.Errorf("withdraw %s v%d: %w", name, version, err)
		}
		return map[string]any{"change": "withdraw", "version": version, "note": note}, nil
	})
}

// ReinstateVersion undoes WithdrawVersion: the version may be pinned to
// again. It returns ErrConflict when the version is not withdrawn.
func (s *Store) ReinstateVersion(ctx context.Context, name string, version int, actor Actor) error {
	return s.changeTemplate(ctx, name, actor, func(tx pgx.Tx, t lifecycle) (map[string]any, error) {
		withdrawn, note, err := withdrawal(ctx, tx, t.id, version)
		if err != nil {
			return nil, err
		}
		if !withdrawn {
			return nil, conflictf("%s v%d is not withdrawn", name, version)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM template_withdrawals WHERE template_id = $1 AND version = $2`, t.id, version); err != nil {
			return nil, fmt.Errorf("reinstate %s v%d: %w", name, version, err)
		}
		return map[string]any{"change": "reinstate", "version": version, "withdrawn_note": note}, nil
	})
}

// withdrawal locks one version's row for a change and returns whether it
// is withdrawn and why; ErrNotFound when there is no such version.
func withdrawal(ctx context.Context, tx pgx.Tx, templateID int64, version int) (bool, string, error) {
	// The version's row is the lock: a withdrawal row may not exist yet.
	var note *string
	err := tx.QueryRow(ctx, `SELECT w.note FROM template_versions v
		LEFT JOIN template_withdrawals w ON w.template_id = v.template_id AND w.version = v.version
		WHERE v.template_id = $1 AND v.version = $2 FOR UPDATE OF v`, templateID, version).Scan(&note)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, "", ErrNotFound
	}
	if err != nil {
		return false, "", fmt.Errorf("lock version %d of template %d: %w", version, templateID, err)
	}
	if note == nil {
		return false, "", nil
	}
	return true, *note, nil
}

// withdrawnRefusal says why no VM may be built from a template version
// that was withdrawn, or "" when one may (or there is no such version:
// callers check the range). It holds the version's row (FOR SHARE) until
// the transaction ends, so that a VM is never built from a version as it
// is withdrawn.
func withdrawnRefusal(ctx context.Context, tx pgx.Tx, templateID int64, version int) (string, error) {
	var name string
	var current int
	var note *string
	err := tx.QueryRow(ctx, `SELECT t.name, t.current_version, w.note
		FROM template_versions v JOIN templates t ON t.id = v.template_id
		LEFT JOIN template_withdrawals w ON w.template_id = v.template_id AND w.version = v.version
		WHERE v.template_id = $1 AND v.version = $2 FOR SHARE OF v`, templateID, version).Scan(&name, &current, &note)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("version %d of template %d: %w", version, templateID, err)
	case note == nil:
		return "", nil
	}
	return fmt.Sprintf("%s v%d was withdrawn by the platform team (%s); it builds no more VMs: use v%d, the current version",
		name, version, *note, current), nil
}

type lifecycle struct {
	id         int64
	current    int
	deprecated bool
	retired    bool
}

// changeTemplate locks the named template, lets fn change it, and records
// the details fn returns in the audit log, all in one transaction.
func (s *Store) changeTemplate(ctx context.Context, name string, actor Actor, fn func(pgx.Tx, lifecycle) (map[string]any, error)) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var t lifecycle
		err := tx.QueryRow(ctx, `SELECT id, current_version, deprecated_at IS NOT NULL, retired_at IS NOT NULL FROM templates WHERE name = $1 FOR UPDATE`,
			name).Scan(&t.id, &t.current, &t.deprecated, &t.retired)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock template %s: %w", name, err)
		}
		details, err := fn(tx, t)
		if err != nil {
			return err
		}
		return s.auditTemplate(ctx, tx, actor, name, details)
	})
}
