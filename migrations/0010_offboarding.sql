-- +goose Up
-- Offboarding: a user may be disabled, which signs them out everywhere and
-- revokes their API tokens (done by the store in the same transaction).
-- disabled_by says who disabled them, because it decides what re-enables
-- them: an account the identity provider refused ('identity_provider') comes
-- back at the next sign-in whose groups grant a role, while one an
-- administrator disabled ('administrator', `portal users disable`) stays
-- disabled until `portal users enable`.
ALTER TABLE users
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN disabled_by text CHECK (disabled_by IN ('identity_provider', 'administrator')),
    ADD CONSTRAINT users_disabled_consistent CHECK ((disabled_at IS NULL) = (disabled_by IS NULL));

-- +goose Down
ALTER TABLE users
    DROP CONSTRAINT users_disabled_consistent,
    DROP COLUMN disabled_by,
    DROP COLUMN disabled_at;
