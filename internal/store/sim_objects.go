package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SimObject is one object the simulated cluster keeps across restarts.
type SimObject struct {
	Kind      string `db:"kind"`
	Namespace string `db:"namespace"`
	Name      string `db:"name"`
	Body      []byte `db:"body"`
}

// SimObjects returns every stored object of the simulated cluster.
func (s *Store) SimObjects(ctx context.Context) ([]SimObject, error) {
	rows, _ := s.pool.Query(ctx, `SELECT kind, namespace, name, body FROM sim_objects ORDER BY kind, namespace, name`)
	os, err := pgx.CollectRows(rows, pgx.RowToStructByName[SimObject])
	if err != nil {
		return nil, fmt.Errorf("load simulated objects: %w", err)
	}
	return os, nil
}

// SaveSimObject stores (or, with a nil body, removes) one simulated object.
func (s *Store) SaveSimObject(ctx context.Context, o SimObject) error {
	var err error
	if o.Body == nil {
		_, err = s.pool.Exec(ctx, `DELETE FROM sim_objects WHERE kind = $1 AND namespace = $2 AND name = $3`, o.Kind, o.Namespace, o.Name)
	} else {
		_, err = s.pool.Exec(ctx, `INSERT INTO sim_objects (kind, namespace, name, body) VALUES ($1, $2, $3, $4)
			ON CONFLICT (kind, namespace, name) DO UPDATE SET body = EXCLUDED.body`, o.Kind, o.Namespace, o.Name, o.Body)
	}
	if err != nil {
		return fmt.Errorf("save simulated %s %s/%s: %w", o.Kind, o.Namespace, o.Name, err)
	}
	return nil
}
