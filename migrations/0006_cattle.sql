-- +goose Up
-- Issue #11: cattle and pets. A pet is a VM its owner keeps by hand: nobody
-- but the owner may rebuild it.
ALTER TABLE requests ADD COLUMN pet boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE requests DROP COLUMN pet;
