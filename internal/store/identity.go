package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLoginTaken is returned when an identity from the identity provider
// would take a login that already belongs to another user.
var ErrLoginTaken = errors.New("login already belongs to another user")

// ExternalUser is a person as the identity provider (OpenID Connect or an
// authenticating proxy) describes them at sign-in, with the role and team
// already derived from their groups.
type ExternalUser struct {
	// Issuer and Subject identify the person for good: the OpenID issuer URL
	// and the "sub" claim, or "proxy" and the proxy's user header.
	Issuer  string
	Subject string
	// Login is the name Paddock shows and audits (preferred_username or email).
	Login       string
	DisplayName string
	Email       string
	Role        Role
	// Team is the team's name; empty means no team. A team that does not
	// exist yet is created, with a namespace of the same name.
	Team string
}

// UpsertExternalUser creates or updates the user an identity provider
// vouches for, in one transaction that audits a new user, a changed role
// or team, and a new team. The identity provider is the source of truth:
// the role, team, name and email are overwritten on every sign-in, and
// every session and API token of the user acts with the stored role, so a
// promotion or demotion applies to all of them at once. An account the
// identity provider's groups had refused (see RefuseExternalUser) is
// re-enabled, audited; one an administrator disabled is not, and the
// sign-in fails with ErrUserDisabled, changing nothing.
// It returns ErrLoginTaken when Login belongs to a different identity.
func (s *Store) UpsertExternalUser(ctx context.Context, x ExternalUser) (User, error) {
	u, err := s.upsertExternalUser(ctx, x)
	if errors.Is(err, errRaced) {
		// The same person's first sign-in, twice at once (a double click):
		// the second attempt finds the user the first one created.
		u, err = s.upsertExternalUser(ctx, x)
	}
	if errors.Is(err, errRaced) {
		return User{}, ErrLoginTaken
	}
	return u, err
}

// errRaced reports a unique violation on creating a user, which a retry
// either resolves (a concurrent sign-in created them) or confirms.
var errRaced = errors.New("user created concurrently")

func (s *Store) upsertExternalUser(ctx context.Context, x ExternalUser) (User, error) {
	var id int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var teamID *int64
		if x.Team != "" {
			if err := CheckTeamNamespace(x.Team); err != nil {
				return err
			}
			var tid int64
			var created bool
			err := tx.QueryRow(ctx, `
				INSERT INTO teams (name, namespace) VALUES ($1, $1)
				ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
				RETURNING id, xmax = 0`, x.Team).Scan(&tid, &created)
			if err != nil {
				return fmt.Errorf("ensure team %q: %w", x.Team, err)
			}
			if created {
				if err := s.Audit(ctx, tx, Actor{Name: x.Login}, "team_create", "team:"+x.Team,
					map[string]any{"namespace": x.Team, "via": "sign-in"}); err != nil {
					return err
				}
			}
			teamID = &tid
		}
		var old struct {
			Role     Role
			Team     string
			Disabled *DisabledBy
		}
		err := tx.QueryRow(ctx, `
			SELECT u.id, u.role, coalesce(t.name, ''), u.disabled_by FROM users u LEFT JOIN teams t ON t.id = u.team_id
			WHERE u.oidc_issuer = $1 AND u.oidc_subject = $2 FOR UPDATE OF u`, x.Issuer, x.Subject).
			Scan(&id, &old.Role, &old.Team, &old.Disabled)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			err = tx.QueryRow(ctx, `
				INSERT INTO users (login, display_name, email, role, team_id, oidc_issuer, oidc_subject, last_sign_in_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, now()) RETURNING id`,
				x.Login, x.DisplayName, x.Email, x.Role, teamID, x.Issuer, x.Subject).Scan(&id)
			if isUniqueViolation(err, "") {
				return errRaced
			}
			if err != nil {
				return fmt.Errorf("create user %q: %w", x.Login, err)
			}
			return s.Audit(ctx, tx, Actor{UserID: &id, Name: x.Login}, AuditUserCreate, UserTarget(x.Login),
				map[string]any{"role": string(x.Role), "team": x.Team, "issuer": x.Issuer})
		case err != nil:
			return fmt.Errorf("find user %q: %w", x.Login, err)
		case old.Disabled != nil && *old.Disabled == DisabledByAdministrator:
			return ErrUserDisabled
		}
		_, err = tx.Exec(ctx, `
			UPDATE users SET login = $2, display_name = $3, email = $4, role = $5, team_id = $6, last_sign_in_at = now()
			WHERE id = $1`, id, x.Login, x.DisplayName, x.Email, x.Role, teamID)
		if isUniqueViolation(err, "users_login_key") {
			return ErrLoginTaken
		}
		if err != nil {
			return fmt.Errorf("update user %q: %w", x.Login, err)
		}
		actor := Actor{UserID: &id, Name: x.Login}
		if old.Disabled != nil {
			if err := s.enableTx(ctx, tx, actor, id, x.Login, *old.Disabled,
				map[string]any{"via": "identity provider groups", "role": string(x.Role)}); err != nil {
				return err
			}
		}
		if old.Role != x.Role || old.Team != x.Team {
			return s.Audit(ctx, tx, actor, AuditRoleChange, UserTarget(x.Login),
				map[string]any{"fromRole": string(old.Role), "toRole": string(x.Role), "fromTeam": old.Team,
					"toTeam": x.Team, "via": "identity provider groups"})
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return s.UserByID(ctx, id)
}

// Session is a signed-in web session of a user, as the profile page lists it.
type Session struct {
	Via       string    `db:"via"`
	CreatedAt time.Time `db:"created_at"`
	ExpiresAt time.Time `db:"expires_at"`
}

// StartSession records that the web session stored under key (the key scs
// uses in the sessions table) belongs to the user until expires, and audits
// the sign-in, in one transaction. via says how they signed in ("oidc",
// "proxy", "dev"). A disabled user gets ErrUserDisabled and no session,
// even if they were disabled just after the caller looked them up.
func (s *Store) StartSession(ctx context.Context, u User, key, via string, expires time.Time, details map[string]any) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// First, so that the row lock orders this sign-in against a
		// concurrent DisableUser: either it sees the user disabled, or
		// the disabling ends the session recorded here.
		tag, err := tx.Exec(ctx, `UPDATE users SET last_sign_in_at = now() WHERE id = $1 AND disabled_at IS NULL`, u.ID)
		if err != nil {
			return fmt.Errorf("record sign-in time: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return ErrUserDisabled
		}
		// Sessions that ended on their own are forgotten here, as scs forgets them.
		if _, err := tx.Exec(ctx, `DELETE FROM user_sessions WHERE user_id = $1 AND expires_at < now()`, u.ID); err != nil {
			return fmt.Errorf("forget expired sessions: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO user_sessions (session_key, user_id, via, expires_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (session_key) DO UPDATE SET user_id = EXCLUDED.user_id, via = EXCLUDED.via, expires_at = EXCLUDED.expires_at`,
			key, u.ID, via, expires)
		if err != nil {
			return fmt.Errorf("record session: %w", err)
		}
		d := map[string]any{"via": via}
		for k, v := range details {
			d[k] = v
		}
		return s.Audit(ctx, tx, UserActor(u), AuditSignIn, UserTarget(u.Login), d)
	})
}

// UserBySession returns the user a live session belongs to. A session that
// was signed out everywhere, or outlived its absolute lifetime, or whose
// user is disabled, has no user even if its scs row still exists.
func (s *Store) UserBySession(ctx context.Context, key string) (User, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+userColumns+`
		FROM user_sessions us JOIN users u ON u.id = us.user_id LEFT JOIN teams t ON t.id = u.team_id
		WHERE us.session_key = $1 AND us.expires_at > now() AND u.disabled_at IS NULL`, key)
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("load session user: %w", err)
	}
	return u, nil
}

// EndSession forgets one session (sign-out).
func (s *Store) EndSession(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM user_sessions WHERE session_key = $1`, key); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// EndAllSessions signs the user out everywhere: it deletes every web
// session of the user (their scs rows and their mapping) and audits it. It
// returns how many sessions ended. API tokens are not affected; they are
// revoked one by one on the profile page.
func (s *Store) EndAllSessions(ctx context.Context, actor Actor, u User) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if n, err = endSessionsTx(ctx, tx, u.ID); err != nil {
			return err
		}
		return s.Audit(ctx, tx, actor, AuditSignOutAll, UserTarget(u.Login), map[string]any{"sessions": n})
	})
	return n, err
}

// endSessionsTx deletes every web session of the user and returns how many
// were still live.
func endSessionsTx(ctx context.Context, tx pgx.Tx, userID int64) (int, error) {
	// Deleting the mapping rows is what signs the sessions out (see
	// UserBySession); the scs rows go too, so that nothing is left behind.
	var n int
	err := tx.QueryRow(ctx, `
		WITH gone AS (DELETE FROM user_sessions WHERE user_id = $1 RETURNING session_key, expires_at),
		     scs AS (DELETE FROM sessions WHERE token IN (SELECT session_key FROM gone))
		SELECT count(*) FILTER (WHERE expires_at > now()) FROM gone`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("end sessions: %w", err)
	}
	return n, nil
}

// Sessions lists the user's live web sessions, newest first.
func (s *Store) Sessions(ctx context.Context, userID int64) ([]Session, error) {
	rows, _ := s.pool.Query(ctx, `SELECT via, created_at, expires_at FROM user_sessions
		WHERE user_id = $1 AND expires_at > now() ORDER BY created_at DESC`, userID)
	ss, err := pgx.CollectRows(rows, pgx.RowToStructByName[Session])
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return ss, nil
}
