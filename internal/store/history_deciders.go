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

const decidersQuery = `
	SELECT DISTINCT ON (request_id) request_id, actor, to_state AS verdict, reason, at
	FROM events
	WHERE request_id = ANY($1) AND to_state IN ('approved', 'rejected')
	  AND (kind = 'decision' OR from_state = 'pending_approval')
	ORDER BY request_id, id`

// DecidersAndCount finds the first decision on each of the requests ids,
// from their events: the policy's "decision" event that approved it, or a
// move out of pending_approval to approved or rejected; a request not
// decided (yet) is absent from the map. In the same round trip it counts
// the requests matching f (its cursor aside) up to RequestCountCap: a count
// above it means "more than that", which is as far as counting stays cheap
// on a long history. A history page needs both once it has its rows; with
// no ids there is nothing to decide or count.
func (s *Store) DecidersAndCount(ctx context.Context, ids []int64, f HistoryFilter) (map[int64]Decider, int, error) {
	out := make(map[int64]Decider, len(ids))
	if len(ids) == 0 {
		return out, 0, nil
	}
	if err := f.Validate(); err != nil {
		return nil, 0, err
	}
	var n int
	b := &pgx.Batch{}
	b.Queue(decidersQuery, ids).Query(func(rows pgx.Rows) error {
		ds, err := pgx.CollectRows(rows, pgx.RowToStructByName[Decider])
		for _, d := range ds {
			out[d.RequestID] = d
		}
		return err
	})
	cq, cargs := historyCountQuery(f)
	b.Queue(cq, cargs...).QueryRow(func(row pgx.Row) error { return row.Scan(&n) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, 0, fmt.Errorf("deciders and count of %d history rows: %w", len(ids), err)
	}
	return out, n, nil
}
