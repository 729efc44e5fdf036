-- +goose Up
-- catalog_version counts the changes to the lists nearly every page shows:
-- templates (with their current version) and teams. A page reads it in the
-- same query as its session, and the portal keeps those lists in memory
-- for as long as the count stays the same: one changed row anywhere, by any
-- replica or by hand, makes every portal read them again.
CREATE TABLE catalog_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    n        bigint NOT NULL
);
INSERT INTO catalog_version (n) VALUES (0);

-- +goose StatementBegin
CREATE FUNCTION catalog_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_version SET n = n + 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER templates_catalog_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON templates
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump();
CREATE TRIGGER template_versions_catalog_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON template_versions
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump();
CREATE TRIGGER teams_catalog_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON teams
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump();

-- +goose Down
DROP TRIGGER teams_catalog_version ON teams;
DROP TRIGGER template_versions_catalog_version ON template_versions;
DROP TRIGGER templates_catalog_version ON templates;
DROP FUNCTION catalog_version_bump();
DROP TABLE catalog_version;
