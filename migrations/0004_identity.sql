-- +goose Up

-- The append-only audit log: who did what, to what, when. Sign-ins, role
-- changes, approvals, template changes, token creation and VM actions all
-- land here, written in the same transaction as the change they record.
CREATE TABLE audit_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id bigint REFERENCES users (id),
    actor    text NOT NULL,
    action   text NOT NULL,
    target   text NOT NULL DEFAULT '',
    details  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id DESC);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION paddock_forbid_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION paddock_forbid_change();

-- Users who sign in through OpenID Connect are matched by issuer and subject,
-- which never change, rather than by login, which may.
ALTER TABLE users
    ADD COLUMN oidc_issuer  text,
    ADD COLUMN oidc_subject text,
    ADD COLUMN last_sign_in_at timestamptz;
CREATE UNIQUE INDEX users_oidc_identity ON users (oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;

-- Which user each web session belongs to. scs keeps only opaque session data,
-- so this table is what lets "sign out everywhere" find and delete a user's
-- sessions; a session whose row is gone here is no longer signed in, even if
-- a request in flight writes the session back. session_key is the key scs
-- stores in sessions.token (the SHA-256 of the cookie value), never the cookie.
CREATE TABLE user_sessions (
    session_key text PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    via         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);
CREATE INDEX user_sessions_expires ON user_sessions (expires_at);

CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at DESC);

-- +goose Down
DROP INDEX api_tokens_user;
DROP TABLE user_sessions;
DROP INDEX users_oidc_identity;
ALTER TABLE users DROP COLUMN oidc_issuer, DROP COLUMN oidc_subject, DROP COLUMN last_sign_in_at;
DROP TABLE audit_log;
