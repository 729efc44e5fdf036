package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event is one entry of a request's append-only history.
type Event struct {
	ID        int64     `db:"id"`
	RequestID int64     `db:"request_id"`
	At        time.Time `db:"at"`
	Actor     string    `db:"actor"`
	Kind      string    `db:"kind"`
	FromState State     `db:"from_state"`
	ToState   State     `db:"to_state"`
	Reason    string    `db:"reason"`
}

func addEvent(ctx context.Context, tx pgx.Tx, requestID int64, actor Actor, kind string, from, to State, reason string) error {
	_, err := tx.Exec(ctx, eventInsert, requestID, actor.UserID, actor.Name, kind, from, to, reason)
	if err != nil {
		return fmt.Errorf("record %s event: %w", kind, err)
	}
	return nil
}

// eventInsert appends one event: request, actor's user id and name, kind,
// from, to, reason.
const eventInsert = `INSERT INTO events (request_id, actor_id, actor, kind, from_state, to_state, reason)
	VALUES ($1, $2, $3, $4, $5, $6, $7)`

// queueEvent is addEvent as one statement of a batch.
func queueEvent(b *pgx.Batch, requestID int64, actor Actor, kind string, from, to State, reason string) {
	b.Queue(eventInsert, requestID, actor.UserID, actor.Name, kind, from, to, reason)
}

// AddEvent records an event that changes no state (for example a Kubernetes
// warning seen on the VM).
func (s *Store) AddEvent(ctx context.Context, requestID int64, actor Actor, kind, reason string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var st State
		if err := tx.QueryRow(ctx, `SELECT state FROM requests WHERE id = $1`, requestID).Scan(&st); err != nil {
			return fmt.Errorf("load request %d: %w", requestID, err)
		}
		if err := addEvent(ctx, tx, requestID, actor, kind, st, st, reason); err != nil {
			return err
		}
		return notify(ctx, tx, requestID)
	})
}

// Events returns a request's history, oldest first.
func (s *Store) Events(ctx context.Context, requestID int64) ([]Event, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, request_id, at, actor, kind, from_state, to_state, reason
		FROM events WHERE request_id = $1 ORDER BY id`, requestID)
	es, err := pgx.CollectRows(rows, pgx.RowToStructByName[Event])
	if err != nil {
		return nil, fmt.Errorf("events of request %d: %w", requestID, err)
	}
	return es, nil
}
