package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// AuditLogNewer lists the page of entries just newer than f.After, newest
// first like AuditLog: the "Newer" link of a paged log. Before is ignored.
func (s *Store) AuditLogNewer(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit, f.Before = min(f.Limit, 1000), 0
	where, args := f.where()
	rows, _ := s.pool.Query(ctx, auditSelect+where+fmt.Sprintf(" ORDER BY id LIMIT %d", f.Limit), args...)
	es, err := pgx.CollectRows(rows, pgx.RowToStructByName[AuditEntry])
	if err != nil {
		return nil, fmt.Errorf("list newer audit entries: %w", err)
	}
	slices.Reverse(es)
	return es, nil
}

// AuditHasEntry reports whether any entry matches f: whether a Newer or
// Older link would lead anywhere.
func (s *Store) AuditHasEntry(ctx context.Context, f AuditFilter) (bool, error) {
	where, args := f.where()
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (`+auditSelect+where+`)`, args...).Scan(&ok); err != nil {
		return false, fmt.Errorf("look for audit entries: %w", err)
	}
	return ok, nil
}
