package store

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
)

// HistoryRequestColumns and HistoryEventColumns are the columns, in order,
// of the rows CopyHistory writes.
var (
	HistoryRequestColumns = []string{"id", "team_id", "requester_id", "template_id",
		"template_version", "size", "vcpu", "memory_mib", "name", "ssh_public_key", "lease_days", "justification",
		"state", "state_reason", "decision", "desired", "created_at", "updated_at", "expires_at"}
	HistoryEventColumns = []string{"request_id", "at", "actor_id", "actor", "kind", "from_state", "to_state", "reason"}
)

// RequestCount is how many requests the database holds.
func (s *Store) RequestCount(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM requests`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count requests: %w", err)
	}
	return n, nil
}

// ReserveRequestIDs takes n request ids from the sequence, in order.
func (s *Store) ReserveRequestIDs(ctx context.Context, n int) ([]int64, error) {
	rows, _ := s.pool.Query(ctx, `SELECT nextval(pg_get_serial_sequence('requests', 'id')) FROM generate_series(1, $1)`, n)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("reserve request ids: %w", err)
	}
	return ids, nil
}

// CopyHistory writes historical requests and their events (rows of
// HistoryRequestColumns and HistoryEventColumns) with COPY, in one
// transaction that does not wait for its commit to reach the disk: a crash
// loses at most this batch.
func (s *Store) CopyHistory(ctx context.Context, requests, events [][]any) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return fmt.Errorf("copy history: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"requests"}, HistoryRequestColumns, pgx.CopyFromRows(requests)); err != nil {
			return fmt.Errorf("copy history: requests: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, HistoryEventColumns, pgx.CopyFromRows(events)); err != nil {
			return fmt.Errorf("copy history: events: %w", err)
		}
		// At commit, team_usage's deferred trigger adds each request that
		// counts in a quota to its team's row, in the order of the rows:
		// two batches spanning the same teams would lock those rows in
		// different orders and deadlock. Lock them here, in team order.
		teams := map[int64]bool{}
		for _, r := range requests {
			id, ok := r[1].(int64)
			if !ok {
				return fmt.Errorf("copy history: team_id is a %T, not an int64", r[1])
			}
			teams[id] = true
		}
		if _, err := tx.Exec(ctx, `INSERT INTO team_usage (team_id) SELECT id FROM unnest($1::bigint[]) AS id ORDER BY id ON CONFLICT DO NOTHING`,
			slices.Sorted(maps.Keys(teams))); err != nil {
			return fmt.Errorf("copy history: team usage: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT team_id FROM team_usage WHERE team_id = ANY($1) ORDER BY team_id FOR NO KEY UPDATE`,
			slices.Sorted(maps.Keys(teams))); err != nil {
			return fmt.Errorf("copy history: team usage: %w", err)
		}
		return nil
	})
}

// AnalyzeHistory refreshes the planner's statistics after a bulk load.
func (s *Store) AnalyzeHistory(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `ANALYZE requests, events`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}
