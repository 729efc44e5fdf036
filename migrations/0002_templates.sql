-- +goose Up

-- Why a version was published, in the publisher's words; shown in the
-- version history. Immutable like the rest of the row.
ALTER TABLE template_versions ADD COLUMN note text NOT NULL DEFAULT '';

-- A template is retired only after it was deprecated, so that developers saw
-- the note before it disappeared.
ALTER TABLE templates ADD CONSTRAINT templates_retired_after_deprecated
    CHECK (retired_at IS NULL OR deprecated_at IS NOT NULL);

-- Usage per template version (the platform pages and the outdated badges).
CREATE INDEX requests_template_version ON requests (template_id, template_version)
    WHERE state NOT IN ('deleted', 'rejected');

-- +goose Down
DROP INDEX requests_template_version;
ALTER TABLE templates DROP CONSTRAINT templates_retired_after_deprecated;
ALTER TABLE template_versions DROP COLUMN note;
