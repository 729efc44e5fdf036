package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Team owns VMs and maps to one Kubernetes namespace.
type Team struct {
	ID        int64     `db:"id"`
	Name      string    `db:"name"`
	Namespace string    `db:"namespace"`
	CreatedAt time.Time `db:"created_at"`
}

// ErrReservedNamespace is wrapped by the error of every attempt to give a
// team a namespace that belongs to the cluster, KubeVirt, CDI or Paddock.
var ErrReservedNamespace = errors.New("reserved namespace")

// ReservedNamespaceRule says, in words for people, which namespaces no team
// may have.
const ReservedNamespaceRule = "a team's namespace may not be default, kubevirt, cdi or paddock, nor start with kube-"

// reservedNamespaces are the cluster's default namespace, KubeVirt's, CDI's
// and the one deploy/ runs Paddock in; every kube-* namespace is the
// cluster's too (kube-system, kube-public, kube-node-lease).
var reservedNamespaces = []string{"default", "kubevirt", "cdi", "paddock"}

// CheckTeamNamespace returns an error wrapping ErrReservedNamespace when a
// team may not have namespace ns: its VMs, and the access its members get
// to them, would land among the cluster's own workloads or Paddock's.
// Every path that creates a team or sets its namespace calls it.
func CheckTeamNamespace(ns string) error {
	if strings.HasPrefix(ns, "kube-") || slices.Contains(reservedNamespaces, ns) {
		return fmt.Errorf("%w: namespace %q: %s", ErrReservedNamespace, ns, ReservedNamespaceRule)
	}
	return nil
}

// EnsureTeam creates the team if it does not exist and returns it. A
// reserved namespace (CheckTeamNamespace) is refused.
func (s *Store) EnsureTeam(ctx context.Context, name, namespace string) (Team, error) {
	if err := CheckTeamNamespace(namespace); err != nil {
		return Team{}, err
	}
	rows, _ := s.pool.Query(ctx, `
		INSERT INTO teams (name, namespace) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
		RETURNING id, name, namespace, created_at`, name, namespace)
	t, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Team])
	if err != nil {
		return Team{}, fmt.Errorf("ensure team %q: %w", name, err)
	}
	return t, nil
}

// TeamByID returns one team.
func (s *Store) TeamByID(ctx context.Context, id int64) (Team, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, name, namespace, created_at FROM teams WHERE id = $1`, id)
	t, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Team])
	if errors.Is(err, pgx.ErrNoRows) {
		return Team{}, ErrNotFound
	}
	if err != nil {
		return Team{}, fmt.Errorf("team %d: %w", id, err)
	}
	return t, nil
}

// Teams lists every team by name.
func (s *Store) Teams(ctx context.Context) ([]Team, error) {
	return s.catalog.teams.get(ctx, slices.Clone, func(ctx context.Context) ([]Team, int64, bool, error) {
		rows, _ := s.pool.Query(ctx, `SELECT id, name, namespace, created_at, `+catalogVersionColumn+` FROM teams ORDER BY name`)
		var at int64
		ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Team, error) {
			var t Team
			err := row.Scan(&t.ID, &t.Name, &t.Namespace, &t.CreatedAt, &at)
			return t, err
		})
		if err != nil {
			return nil, 0, false, fmt.Errorf("list teams: %w", err)
		}
		return ts, at, len(ts) > 0, nil
	})
}

// lockTeamOfRequest locks the team of request id (FOR NO KEY UPDATE, which
// submits inserting requests of the team do not wait for) and returns
// it: every writer that may change a team's usage takes the team, then the
// request, in that order. A missing request is ErrNotFound.
func lockTeamOfRequest(ctx context.Context, tx pgx.Tx, id int64) (Team, error) {
	var t Team
	err := tx.QueryRow(ctx, `SELECT t.id, t.name, t.namespace, t.created_at FROM requests r JOIN teams t ON t.id = r.team_id
		WHERE r.id = $1 FOR NO KEY UPDATE OF t`, id).Scan(&t.ID, &t.Name, &t.Namespace, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("lock the team of request %d: %w", id, err)
	}
	return t, nil
}
