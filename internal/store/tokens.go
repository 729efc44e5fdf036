package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// tokenPrefix marks Paddock API tokens so that secret scanners can find leaked ones.
const tokenPrefix = "pdk_"

// Limits on API tokens.
const (
	MaxTokenNameLen = 100
	MaxTokenDays    = 365
)

// Token is an API token as its owner sees it; the secret itself is never
// stored, only its SHA-256.
type Token struct {
	ID         int64      `db:"id"`
	Name       string     `db:"name"`
	CreatedAt  time.Time  `db:"created_at"`
	ExpiresAt  *time.Time `db:"expires_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
}

// Active reports whether the token still authenticates at now.
func (t Token) Active(now time.Time) bool {
	return t.RevokedAt == nil && (t.ExpiresAt == nil || t.ExpiresAt.After(now))
}

// CreateToken makes a new API token for the user and returns its plaintext,
// which is shown once; only its SHA-256 is stored. The owner is the actor
// in the audit log; see CreateTokenBy.
func (s *Store) CreateToken(ctx context.Context, userID int64, name string, expiresAt *time.Time) (string, error) {
	return s.CreateTokenBy(ctx, Actor{UserID: &userID}, userID, name, expiresAt)
}

// CreateTokenBy is CreateToken on behalf of actor (for example the
// command-line tool run by an operator). An actor without a name is the
// owner. The creation is audited with the token's name and expiry. A
// disabled user gets no token (ErrUserDisabled).
func (s *Store) CreateTokenBy(ctx context.Context, actor Actor, userID int64, name string, expiresAt *time.Time) (string, error) {
	name = strings.TrimSpace(name)
	if v := CheckToken(name, expiresAt); len(v.Fields) > 0 {
		return "", v
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	plain := tokenPrefix + base64.RawURLEncoding.EncodeToString(buf)
	sum := sha256.Sum256([]byte(plain))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		var login string
		var disabled bool
		// FOR SHARE orders this against DisableUser, which would otherwise
		// miss a token created while it runs.
		err := tx.QueryRow(ctx, `SELECT login, disabled_at IS NOT NULL FROM users WHERE id = $1 FOR SHARE`, userID).
			Scan(&login, &disabled)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("find token owner: %w", err)
		}
		if disabled {
			return ErrUserDisabled
		}
		err = tx.QueryRow(ctx, `INSERT INTO api_tokens (user_id, name, hash, expires_at) VALUES ($1, $2, $3, $4) RETURNING id`,
			userID, name, sum[:], expiresAt).Scan(&id)
		if err != nil {
			return fmt.Errorf("store token: %w", err)
		}
		if actor.Name == "" {
			actor.Name = login
		}
		d := map[string]any{"id": id, "name": name, "owner": login}
		if expiresAt != nil {
			d["expiresAt"] = expiresAt.UTC().Format(time.RFC3339)
		}
		return s.Audit(ctx, tx, actor, AuditTokenCreate, TokenTarget(id), d)
	})
	if err != nil {
		return "", err
	}
	return plain, nil
}

// CheckToken validates a new token's name and expiry; the returned error
// has no fields when both are fine.
func CheckToken(name string, expiresAt *time.Time) *ValidationError {
	v := &ValidationError{}
	switch name = strings.TrimSpace(name); {
	case name == "":
		v.Add("name", "is required, so that you can recognise the token later")
	case len(name) > MaxTokenNameLen:
		v.Add("name", "must be at most %d characters", MaxTokenNameLen)
	}
	if expiresAt != nil && time.Until(*expiresAt) > (MaxTokenDays+1)*24*time.Hour {
		v.Add("expiresDays", "must be at most %d days", MaxTokenDays)
	}
	return v
}

// TokenTarget is the audit target naming an API token.
func TokenTarget(id int64) string { return "token:" + strconv.FormatInt(id, 10) }

// Tokens lists the user's API tokens, newest first, revoked ones included.
func (s *Store) Tokens(ctx context.Context, userID int64) ([]Token, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, name, created_at, expires_at, revoked_at, last_used_at
		FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC`, userID)
	ts, err := pgx.CollectRows(rows, pgx.RowToStructByName[Token])
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken revokes one of u's own tokens and audits it. A token of
// someone else is ErrNotFound, so that ids cannot be probed; revoking a
// revoked token changes nothing.
func (s *Store) RevokeToken(ctx context.Context, u User, tokenID int64) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var name string
		var wasRevoked bool
		err := tx.QueryRow(ctx, `
			WITH old AS (SELECT id, revoked_at FROM api_tokens WHERE id = $1 AND user_id = $2 FOR UPDATE)
			UPDATE api_tokens k SET revoked_at = coalesce(k.revoked_at, now()) FROM old WHERE k.id = old.id
			RETURNING k.name, old.revoked_at IS NOT NULL`, tokenID, u.ID).Scan(&name, &wasRevoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if wasRevoked {
			return nil
		}
		return s.Audit(ctx, tx, UserActor(u), AuditTokenRevoke, TokenTarget(tokenID), map[string]any{"name": name, "owner": u.Login})
	})
}

// tokenUseGranularity is how far behind a token's recorded last use may
// be (the profile page shows it to the minute).
const tokenUseGranularity = time.Minute

// UserByToken returns the owner of a valid (unexpired, unrevoked) token, with
// the owner's current role. A disabled owner's token is not valid.
func (s *Store) UserByToken(ctx context.Context, plain string) (User, error) {
	if !strings.HasPrefix(plain, tokenPrefix) || len(plain) > 200 {
		return User{}, ErrNotFound
	}
	sum := sha256.Sum256([]byte(plain))
	rows, _ := s.pool.Query(ctx, `
		SELECT `+userColumns+`, k.id AS token_id,
		       coalesce(k.last_used_at < now() - make_interval(secs => $2), true) AS touch
		FROM api_tokens k JOIN users u ON u.id = k.user_id LEFT JOIN teams t ON t.id = u.team_id
		WHERE k.hash = $1 AND k.revoked_at IS NULL AND u.disabled_at IS NULL
		  AND (k.expires_at IS NULL OR k.expires_at > now())`, sum[:], tokenUseGranularity.Seconds())
	type found struct {
		User
		TokenID int64 `db:"token_id"`
		Touch   bool  `db:"touch"`
	}
	f, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[found])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("look up token: %w", err)
	}
	if f.Touch {
		// Written at most once a tokenUseGranularity: a script's every call
		// would otherwise be a write, and its parallel calls would queue
		// on the token's row.
		if _, err := s.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now() WHERE id = $1`, f.TokenID); err != nil {
			return User{}, fmt.Errorf("record token use: %w", err)
		}
	}
	return f.User, nil
}
