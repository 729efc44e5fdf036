package store

import (
	"context"
	"fmt"
)

// RequestsByState counts requests in each state.
func (s *Store) RequestsByState(ctx context.Context) (map[State]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM requests GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count requests by state: %w", err)
	}
	defer rows.Close()
	out := map[State]int{}
	for rows.Next() {
		var st State
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// JobsByState counts background jobs by River state (available, running,
// retryable, scheduled, discarded, …); the first four are the queue.
func (s *Store) JobsByState(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT state::text, count(*) FROM river_job WHERE state <> 'completed' GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count jobs by state: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}
