package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// specCache keeps decoded template specs by template and version. A
// published version never changes (the database refuses updates to
// template_versions), so an entry never goes stale; decoding the JSON of
// every spec was most of the catalog's cost. Callers get copies: nothing
// they change reaches the cache.
type specCache struct {
	mu sync.RWMutex
	m  map[specKey]TemplateSpec
}

type specKey struct {
	template int64
	version  int
}

// fill sets the Spec of each template from the cache, reading and decoding
// in one query the versions it does not hold yet.
func (c *specCache) fill(ctx context.Context, pool *pgxpool.Pool, ts []Template) error {
	var ids []int64
	var versions []int
	var missing []int // indexes into ts
	c.mu.RLock()
	for i := range ts {
		if spec, ok := c.m[specKey{ts[i].ID, ts[i].Version}]; ok {
			ts[i].Spec = spec.clone()
		} else {
			ids, versions = append(ids, ts[i].ID), append(versions, ts[i].Version)
			missing = append(missing, i)
		}
	}
	c.mu.RUnlock()
	if len(ids) == 0 {
		return nil
	}
	rows, err := pool.Query(ctx, `SELECT template_id, version, spec FROM template_versions
		WHERE (template_id, version) IN (SELECT * FROM unnest($1::bigint[], $2::int[]))`, ids, versions)
	if err != nil {
		return fmt.Errorf("read template specs: %w", err)
	}
	defer rows.Close()
	read := map[specKey]TemplateSpec{}
	for rows.Next() {
		var k specKey
		var raw []byte
		if err := rows.Scan(&k.template, &k.version, &raw); err != nil {
			return fmt.Errorf("read template specs: %w", err)
		}
		var spec TemplateSpec
		if err := json.Unmarshal(raw, &spec); err != nil {
			return fmt.Errorf("decode spec of template %d version %d: %w", k.template, k.version, err)
		}
		read[k] = spec
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read template specs: %w", err)
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[specKey]TemplateSpec{}
	}
	for k, spec := range read {
		c.m[k] = spec
	}
	c.mu.Unlock()
	for _, i := range missing {
		spec, ok := read[specKey{ts[i].ID, ts[i].Version}]
		if !ok {
			return fmt.Errorf("template %s has no version %d", ts[i].Name, ts[i].Version)
		}
		ts[i].Spec = spec.clone()
	}
	return nil
}

// clone copies the spec's slices and pointers, so that the copy shares no
// memory with s.
func (s TemplateSpec) clone() TemplateSpec {
	s.Tags = slices.Clone(s.Tags)
	s.Sizes = slices.Clone(s.Sizes)
	s.Teams = slices.Clone(s.Teams)
	if s.Image.DataSource != nil {
		ds := *s.Image.DataSource
		s.Image.DataSource = &ds
	}
	return s
}
