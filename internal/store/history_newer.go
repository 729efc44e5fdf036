package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// HistoryNewer returns the page of requests matching f just newer than
// before, newest first like History, and whether there are newer ones
// still: the "Newer" link of the history. f.After is ignored.
func (s *Store) HistoryNewer(ctx context.Context, f HistoryFilter, before Cursor) ([]HistoryRow, bool, error) {
	if err := f.Validate(); err != nil {
		return nil, false, err
	}
	if f.Limit <= 0 || f.Limit > MaxHistoryPage {
		f.Limit = 50
	}
	f.After = nil
	where, args := historyWhere(f)
	args = append(args, before.CreatedAt, before.ID)
	n := len(args)
	where += " AND (r.created_at, r.id) > ($" + strconv.Itoa(n-1) + ", $" + strconv.Itoa(n) + ")"
	q := `
	SELECT r.id, r.created_at, (SELECT name FROM teams WHERE id = r.team_id),
	       (SELECT login FROM users WHERE id = r.requester_id), (SELECT name FROM templates WHERE id = r.template_id),
	       r.template_version, r.size, r.vcpu, r.memory_mib, r.name, r.lease_days, r.justification, r.state,
	       r.state_reason, r.decision, r.expires_at
	FROM requests r
	WHERE r.id = ANY (ARRAY(SELECT r.id FROM requests r WHERE ` + where + ` ORDER BY r.created_at, r.id LIMIT ` + strconv.Itoa(f.Limit+1) + `))
	ORDER BY r.created_at, r.id`
	rows, _ := s.pool.Query(ctx, q, append([]any{pgx.QueryExecModeExec}, args...)...)
	hs, err := pgx.CollectRows(rows, scanHistoryRow)
	if err != nil {
		return nil, false, fmt.Errorf("newer history: %w", err)
	}
	more := len(hs) > f.Limit
	if more {
		hs = hs[:f.Limit]
	}
	slices.Reverse(hs)
	return hs, more, nil
}
