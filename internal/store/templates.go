package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
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

// TemplateVersion is one immutable version of a template.
type TemplateVersion struct {
	TemplateID int64
	Version    int
	Spec       TemplateSpec
	CreatedAt  time.Time
}

// PublishTemplate creates the template or publishes a new version of it when
// the spec differs from the current version. It reports the version now
// current and whether a new one was published.
func (s *Store) PublishTemplate(ctx context.Context, spec TemplateSpec, actorID *int64) (version int, changed bool, err error) {
	if err := spec.Validate(); err != nil {
		return 0, false, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		var cur int
		err := tx.QueryRow(ctx, `
			INSERT INTO templates (name) VALUES ($1)
			ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
			RETURNING id, current_version`, spec.Name).Scan(&id, &cur)
		if err != nil {
			return fmt.Errorf("upsert template: %w", err)
		}
		// Lock the template row so that concurrent publishes number versions in order.
		if err := tx.QueryRow(ctx, `SELECT current_version FROM templates WHERE id = $1 FOR UPDATE`, id).Scan(&cur); err != nil {
			return fmt.Errorf("lock template: %w", err)
		}
		if cur > 0 {
			var raw []byte
			if err := tx.QueryRow(ctx, `SELECT spec FROM template_versions WHERE template_id = $1 AND version = $2`, id, cur).Scan(&raw); err != nil {
				return fmt.Errorf("load current version: %w", err)
			}
			var old TemplateSpec
			if err := json.Unmarshal(raw, &old); err != nil {
				return fmt.Errorf("decode current version: %w", err)
			}
			if reflect.DeepEqual(normalize(old), normalize(spec)) {
				version = cur
				return nil
			}
		}
		version, changed = cur+1, true
		if _, err := tx.Exec(ctx, `INSERT INTO template_versions (template_id, version, spec, created_by) VALUES ($1, $2, $3, $4)`,
			id, version, spec, actorID); err != nil {
			return fmt.Errorf("insert version: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE templates SET current_version = $2 WHERE id = $1`, id, version); err != nil {
			return fmt.Errorf("bump version: %w", err)
		}
		return nil
	})
	return version, changed, err
}

// normalize makes nil and empty slices compare equal.
func normalize(t TemplateSpec) TemplateSpec {
	b, _ := json.Marshal(t)
	var n TemplateSpec
	_ = json.Unmarshal(b, &n)
	return n
}

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
// deprecated ones included, by display name.
func (s *Store) Templates(ctx context.Context) ([]Template, error) {
	rows, _ := s.pool.Query(ctx, templateSelect+` WHERE t.retired_at IS NULL ORDER BY v.spec->>'displayName', t.name`)
	ts, err := pgx.CollectRows(rows, scanTemplate)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	return ts, nil
}

// TemplateByName returns the current version of the named template.
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

// TemplateVersion returns one pinned version.
func (s *Store) TemplateVersion(ctx context.Context, templateID int64, version int) (TemplateVersion, error) {
	tv := TemplateVersion{TemplateID: templateID, Version: version}
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT spec, created_at FROM template_versions WHERE template_id = $1 AND version = $2`,
		templateID, version).Scan(&raw, &tv.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return tv, ErrNotFound
	}
	if err != nil {
		return tv, fmt.Errorf("template version %d/%d: %w", templateID, version, err)
	}
	if err := json.Unmarshal(raw, &tv.Spec); err != nil {
		return tv, fmt.Errorf("decode template version: %w", err)
	}
	return tv, nil
}

// SameSpec reports whether two specs would publish the same version.
func SameSpec(a, b TemplateSpec) bool { return reflect.DeepEqual(normalize(a), normalize(b)) }
