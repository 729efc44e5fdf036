package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Decider is who first decided a request, the policy or a person, with
// the verdict and the reason given.
type Decider struct {
	RequestID int64     `db:"request_id"`
	Actor     string    `db:"actor"`
	Verdict   State     `db:"verdict"`
	Reason    string    `db:"reason"`
	At        time.Time `db:"at"`
}

// Deciders finds the first decision on each of the requests ids, from
// their events: the policy's "decision" event that approved it, or a move
// out of pending_approval to approved or rejected. A request not decided
// (yet) is absent from the map.
func (s *Store) Deciders(ctx context.Context, ids []int64) (map[int64]Decider, error) {
	out := make(map[int64]Decider, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, _ := s.pool.Query(ctx, `
		SELECT DISTINCT ON (request_id) request_id, actor, to_state AS verdict, reason, at
		FROM events
		WHERE request_id = ANY($1) AND to_state IN ('approved', 'rejected')
		  AND (kind = 'decision' OR from_state = 'pending_approval')
		ORDER BY request_id, id`, ids)
	ds, err := pgx.CollectRows(rows, pgx.RowToStructByName[Decider])
	if err != nil {
		return nil, fmt.Errorf("deciders of %d requests: %w", len(ids), err)
	}
	for _, d := range ds {
		out[d.RequestID] = d
	}
	return out, nil
}
