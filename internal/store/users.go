package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Role is what a user may do in Paddock.
type Role string

// The three roles.
const (
	RoleDeveloper Role = "developer"
	RolePlatform  Role = "platform"
	RoleManager   Role = "manager"
)

// User is a person who signs in.
type User struct {
	ID          int64  `db:"id"`
	Login       string `db:"login"`
	DisplayName string `db:"display_name"`
	Email       string `db:"email"`
	Role        Role   `db:"role"`
	TeamID      *int64 `db:"team_id"`
	TeamName    string `db:"team_name"`
	// Disabled users are offboarded: no session or API token of theirs
	// authenticates, and they cannot sign in (see DisableUser).
	Disabled bool `db:"disabled"`
}

const userColumns = `u.id, u.login, u.display_name, u.email, u.role, u.team_id, coalesce(t.name, '') AS team_name,
	u.disabled_at IS NOT NULL AS disabled`

// EnsureUser creates the user if the login is new, and returns it. An
// existing user is left as it is, so seeding twice changes nothing.
func (s *Store) EnsureUser(ctx context.Context, login, displayName string, role Role, teamID *int64) (User, error) {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO users (login, display_name, role, team_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (login) DO NOTHING`, login, displayName, role, teamID)
	if err != nil {
		return User{}, fmt.Errorf("ensure user %q: %w", login, err)
	}
	return s.UserByLogin(ctx, login)
}

// UserByLogin returns the user with that login.
func (s *Store) UserByLogin(ctx context.Context, login string) (User, error) {
	return s.oneUser(ctx, `WHERE u.login = $1`, login)
}

// UserByID returns the user with that id.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	return s.oneUser(ctx, `WHERE u.id = $1`, id)
}

func (s *Store) oneUser(ctx context.Context, where string, arg any) (User, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users u LEFT JOIN teams t ON t.id = u.team_id `+where, arg)
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("load user: %w", err)
	}
	return u, nil
}

// Users lists every user by login.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users u LEFT JOIN teams t ON t.id = u.team_id ORDER BY u.login`)
	us, err := pgx.CollectRows(rows, pgx.RowToStructByName[User])
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}
