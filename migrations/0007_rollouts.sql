-- +goose Up
-- Issue #11: a rollout moves a template's VMs to a newer version in batches.
-- Each batch is rebuilt and must reach running before the next starts; a
-- failure pauses the rollout with its reason. The generation changes on
-- every start, pause, resume and cancel, so a step job of an earlier
-- generation (still queued, or running across a restart) does nothing.
CREATE TABLE rollouts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template_id    bigint NOT NULL REFERENCES templates (id),
    target_version int NOT NULL,
    batch_size     int NOT NULL CHECK (batch_size BETWEEN 1 AND 100),
    state          text NOT NULL CHECK (state IN ('running', 'paused', 'cancelled', 'completed')),
    reason         text NOT NULL DEFAULT '',
    generation     int NOT NULL DEFAULT 1,
    created_by     bigint REFERENCES users (id),
    created_by_login text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    FOREIGN KEY (template_id, target_version) REFERENCES template_versions (template_id, version)
);
-- One rollout at a time per template: two would fight over the same VMs.
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (template_id) WHERE state IN ('running', 'paused');
CREATE INDEX rollouts_created ON rollouts (created_at DESC, id DESC);

CREATE TABLE rollout_items (
    rollout_id   bigint NOT NULL REFERENCES rollouts (id),
    request_id   bigint NOT NULL REFERENCES requests (id),
    position     int NOT NULL,
    -- 0 for a VM skipped when the rollout started (a pet)
    batch        int NOT NULL,
    from_version int NOT NULL,
    state        text NOT NULL CHECK (state IN ('pending', 'rebuilding', 'done', 'failed', 'skipped', 'cancelled')),
    reason       text NOT NULL DEFAULT '',
    -- how often the rollout asked for this VM's rebuild (again after a resume)
    attempts     int NOT NULL DEFAULT 0,
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (rollout_id, request_id)
);
CREATE INDEX rollout_items_request ON rollout_items (request_id);

-- +goose Down
DROP TABLE rollout_items;
DROP TABLE rollouts;
