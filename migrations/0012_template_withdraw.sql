-- +goose Up
-- Issue #15: the platform team can withdraw a template version (a broken
-- image, a vulnerable cloud-init). A withdrawn version builds no VM: no
-- request, rebuild or rollout may pin to it; VMs already on it keep running.
-- Versions stay immutable, so a withdrawal is a row of its own; reinstating
-- the version deletes it (both are in the audit log).
CREATE TABLE template_withdrawals (
    template_id  bigint NOT NULL,
    version      int NOT NULL,
    withdrawn_by bigint REFERENCES users (id),
    withdrawn_at timestamptz NOT NULL DEFAULT now(),
    -- Why, shown on the template page and in every refusal.
    note         text NOT NULL,
    PRIMARY KEY (template_id, version),
    FOREIGN KEY (template_id, version) REFERENCES template_versions (template_id, version)
);

-- A developer who rebuilds to a version older than the current one asks a
-- person: an approval of kind 'rebuild' for that version.
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_check CHECK (kind IN ('request', 'extension', 'scale', 'rebuild'));
ALTER TABLE approvals ADD COLUMN version int NOT NULL DEFAULT 0;

-- +goose Down
DELETE FROM approvals WHERE kind = 'rebuild';
ALTER TABLE approvals DROP COLUMN version;
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_check CHECK (kind IN ('request', 'extension', 'scale'));
DROP TABLE template_withdrawals;
