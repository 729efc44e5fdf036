package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// tokenPrefix marks Paddock API tokens so that secret scanners can find leaked ones.
const tokenPrefix = "pdk_"

// CreateToken makes a new API token for the user and returns its plaintext,
// which is shown once; only its SHA-256 is stored.
func (s *Store) CreateToken(ctx context.Context, userID int64, name string, expiresAt *time.Time) (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	plain := tokenPrefix + base64.RawURLEncoding.EncodeToString(buf)
	sum := sha256.Sum256([]byte(plain))
	_, err := s.pool.Exec(ctx, `INSERT INTO api_tokens (user_id, name, hash, expires_at) VALUES ($1, $2, $3, $4)`,
		userID, name, sum[:], expiresAt)
	if err != nil {
		return "", fmt.Errorf("store token: %w", err)
	}
	return plain, nil
}

// UserByToken returns the owner of a valid (unexpired, unrevoked) token, with
// the owner's current role.
func (s *Store) UserByToken(ctx context.Context, plain string) (User, error) {
	if !strings.HasPrefix(plain, tokenPrefix) || len(plain) > 200 {
		return User{}, ErrNotFound
	}
	sum := sha256.Sum256([]byte(plain))
	rows, _ := s.pool.Query(ctx, `
		UPDATE api_tokens k SET last_used_at = now()
		FROM users u LEFT JOIN teams t ON t.id = u.team_id
		WHERE k.hash = $1 AND u.id = k.user_id AND k.revoked_at IS NULL
		  AND (k.expires_at IS NULL OR k.expires_at > now())
		RETURNING `+userColumns, sum[:])
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("look up token: %w", err)
	}
	return u, nil
}
