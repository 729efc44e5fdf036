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
// before in f's order, in that order like History, with their deciders and
// the count of what matches (as History counts); its Newer says whether
// there are more before them still: the "Newer" link of the history (newer
// in its default order). f.After is ignored.
func (s *Store) HistoryNewer(ctx context.Context, f HistoryFilter, before Cursor) (HistoryPage, error) {
	if err := f.Validate(); err != nil {
		return HistoryPage{}, err
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
	rows, _ := s.pool.Query(ctx, historyPageSQL(f, join, where, order), append([]any{pgx.QueryExecModeExec}, args...)...)
	hs, counted, err := collectHistoryPage(rows)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("newer history: %w", err)
	}
	total, err := s.historyTotal(ctx, f, hs, counted)
	if err != nil {
		return HistoryPage{}, err
	}
	p := HistoryPage{Rows: hs, Total: total, Newer: len(hs) > f.Limit}
	if p.Newer {
		p.Rows = hs[:f.Limit]
	}
	slices.Reverse(p.Rows)
	return p, nil
}
