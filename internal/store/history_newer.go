package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// HistoryNewer returns the page of requests matching f just before
// before in f's order, in that order like History, and whether there are
// more before them still: the "Newer" link of the history (newer in its
// default order). f.After is ignored.
func (s *Store) HistoryNewer(ctx context.Context, f HistoryFilter, before Cursor) ([]HistoryRow, bool, error) {
	if err := f.Validate(); err != nil {
		return nil, false, err
	}
	if f.Limit <= 0 || f.Limit > MaxHistoryPage {
		f.Limit = 50
	}
	f.After = nil
	where, args := historyWhere(f)
	cond, vals := cursorCond(f, before, true)
	for _, v := range vals {
		args = append(args, v)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
	}
	where += " AND " + cond
	order, join := historyOrder(f, true)
	q := fmt.Sprintf(historySelect, join, where, order, "LIMIT "+strconv.Itoa(f.Limit+1), outerOrder(order))
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
