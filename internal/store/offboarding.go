package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrUserDisabled is returned when a disabled user would sign in, start a
// session or get a new API token.
var ErrUserDisabled = errors.New("user is disabled")

// DisabledBy says who disabled an account, which decides what re-enables it.
type DisabledBy string

// Who may disable an account.
const (
	// DisabledByIdentityProvider: a sign-in whose groups no longer grant a
	// role. The identity provider is the source of truth, so a later
	// sign-in whose groups grant a role again re-enables the account.
	DisabledByIdentityProvider DisabledBy = "identity_provider"
	// DisabledByAdministrator: `portal users disable`. The account stays
	// disabled, whatever the identity provider says, until `portal users
	// enable`; an offboarding must not be undone by a stale group.
	DisabledByAdministrator DisabledBy = "administrator"
)

// Offboarding is what disabling a user did.
type Offboarding struct {
	// AlreadyDisabled is true when the user was disabled before (by the
	// same party, so nothing changed but any straggling credentials).
	AlreadyDisabled bool
	TokensRevoked   int
	SessionsEnded   int
}

// DisableUser disables the user with that login on behalf of an
// administrator, for scripted offboarding: in one transaction it marks the
// user disabled, revokes every API token of theirs, ends every web session,
// and audits it all. The account stays disabled until EnableUser, even if
// the identity provider would still grant a role. reason is recorded in
// the audit log (it may be empty). It returns ErrNotFound for an unknown
// login.
func (s *Store) DisableUser(ctx context.Context, actor Actor, login, reason string) (Offboarding, error) {
	var off Offboarding
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		id, was, err := lockUserByLogin(ctx, tx, login)
		if err != nil {
			return err
		}
		d := map[string]any{}
		if reason != "" {
			d["reason"] = reason
		}
		off, err = s.disableTx(ctx, tx, actor, id, login, was, DisabledByAdministrator, d)
		return err
	})
	return off, err
}

// EnableUser re-enables a disabled user (`portal users enable`), whoever
// disabled them, and audits it. Their revoked tokens stay revoked and their
// ended sessions stay ended: they sign in again and make new tokens. It
// reports whether the user was disabled, and returns ErrNotFound for an
// unknown login.
func (s *Store) EnableUser(ctx context.Context, actor Actor, login string) (bool, error) {
	var changed bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		id, was, err := lockUserByLogin(ctx, tx, login)
		if err != nil {
			return err
		}
		if was == nil {
			return nil
		}
		changed = true
		return s.enableTx(ctx, tx, actor, id, login, *was, nil)
	})
	return changed, err
}

// lockUserByLogin locks the user with that login and returns their id and
// who disabled them (nil when enabled), or ErrNotFound.
func lockUserByLogin(ctx context.Context, tx pgx.Tx, login string) (int64, *DisabledBy, error) {
	var id int64
	var was *DisabledBy
	err := tx.QueryRow(ctx, `SELECT id, disabled_by FROM users WHERE login = $1 FOR UPDATE`, login).Scan(&id, &was)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, ErrNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("find user %q: %w", login, err)
	}
	return id, was, nil
}

// RefuseExternalUser records that the identity provider vouched for x but
// none of their groups grants a role: the refusal is audited and, if the
// person has an account that is not disabled yet, it is disabled at once
// (their tokens revoked, their sessions ended), in the same transaction.
// An account an administrator disabled stays disabled by the
// administrator. details go into the refusal's audit entry.
func (s *Store) RefuseExternalUser(ctx context.Context, x ExternalUser, details map[string]any) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		var was *DisabledBy
		err := tx.QueryRow(ctx, `SELECT id, disabled_by FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2 FOR UPDATE`,
			x.Issuer, x.Subject).Scan(&id, &was)
		if errors.Is(err, pgx.ErrNoRows) {
			// Never admitted: nothing to take away.
			return s.Audit(ctx, tx, Actor{Name: x.Login}, AuditSignInRefused, UserTarget(x.Login), details)
		}
		if err != nil {
			return fmt.Errorf("find user %q: %w", x.Login, err)
		}
		actor := Actor{UserID: &id, Name: x.Login}
		if err := s.Audit(ctx, tx, actor, AuditSignInRefused, UserTarget(x.Login), details); err != nil {
			return err
		}
		if was != nil {
			return nil
		}
		_, err = s.disableTx(ctx, tx, actor, id, x.Login, was, DisabledByIdentityProvider,
			map[string]any{"reason": "no group grants a role"})
		return err
	})
}

// disableTx disables user id (currently disabled by was, nil when enabled)
// on behalf of by, revokes their tokens and ends their sessions, auditing
// each. Disabling again by the same party changes nothing but is not an
// error; an administrator takes over an account the identity provider
// disabled, so that it is no longer re-enabled by a sign-in.
func (s *Store) disableTx(ctx context.Context, tx pgx.Tx, actor Actor, id int64, login string, was *DisabledBy, by DisabledBy, details map[string]any) (Offboarding, error) {
	off := Offboarding{AlreadyDisabled: was != nil && *was == by}
	if !off.AlreadyDisabled {
		if _, err := tx.Exec(ctx, `UPDATE users SET disabled_at = coalesce(disabled_at, now()), disabled_by = $2 WHERE id = $1`,
			id, by); err != nil {
			return off, fmt.Errorf("disable user %q: %w", login, err)
		}
	}
	rows, _ := tx.Query(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL
		RETURNING id, name`, id)
	type revoked struct {
		ID   int64  `db:"id"`
		Name string `db:"name"`
	}
	toks, err := pgx.CollectRows(rows, pgx.RowToStructByName[revoked])
	if err != nil {
		return off, fmt.Errorf("revoke tokens of %q: %w", login, err)
	}
	for _, k := range toks {
		if err := s.Audit(ctx, tx, actor, AuditTokenRevoke, TokenTarget(k.ID),
			map[string]any{"name": k.Name, "owner": login, "via": "user disabled"}); err != nil {
			return off, err
		}
	}
	off.TokensRevoked = len(toks)
	if off.SessionsEnded, err = endSessionsTx(ctx, tx, id); err != nil {
		return off, err
	}
	if off.AlreadyDisabled && off.TokensRevoked == 0 && off.SessionsEnded == 0 {
		return off, nil
	}
	d := map[string]any{"by": string(by), "tokensRevoked": off.TokensRevoked, "sessionsEnded": off.SessionsEnded}
	if was != nil {
		d["wasDisabledBy"] = string(*was)
	}
	for k, v := range details {
		d[k] = v
	}
	return off, s.Audit(ctx, tx, actor, AuditUserDisable, UserTarget(login), d)
}

// enableTx clears the disabled mark of user id (disabled by was) and
// audits it.
func (s *Store) enableTx(ctx context.Context, tx pgx.Tx, actor Actor, id int64, login string, was DisabledBy, details map[string]any) error {
	if _, err := tx.Exec(ctx, `UPDATE users SET disabled_at = NULL, disabled_by = NULL WHERE id = $1`, id); err != nil {
		return fmt.Errorf("enable user %q: %w", login, err)
	}
	d := map[string]any{"wasDisabledBy": string(was)}
	for k, v := range details {
		d[k] = v
	}
	return s.Audit(ctx, tx, actor, AuditUserEnable, UserTarget(login), d)
}
