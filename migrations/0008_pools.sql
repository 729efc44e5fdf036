-- +goose Up
-- Issue #11: pools. A request may be for a pool of identical VMs (a KubeVirt
-- VirtualMachinePool); it counts against its team's quota as replicas VMs.
-- replicas is what the owner last asked for (and was allowed); the provisioner
-- makes spec.replicas of the pool follow it.
ALTER TABLE requests
    ADD COLUMN pool boolean NOT NULL DEFAULT false,
    ADD COLUMN replicas int NOT NULL DEFAULT 1,
    ADD CONSTRAINT requests_replicas CHECK (replicas >= 1 AND (pool OR replicas = 1));

-- What the watcher last saw of each member VM of a pool, for the request page.
CREATE TABLE pool_members (
    request_id bigint NOT NULL REFERENCES requests (id),
    name       text NOT NULL,
    status     text NOT NULL DEFAULT '',
    ip         text NOT NULL DEFAULT '',
    ready      boolean NOT NULL DEFAULT false,
    message    text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, name)
);

-- A pool grown beyond policy waits for a person: an approval of kind
-- 'scale' for the replicas asked for.
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_check CHECK (kind IN ('request', 'extension', 'scale'));
ALTER TABLE approvals ADD COLUMN replicas int NOT NULL DEFAULT 0;

-- +goose Down
DELETE FROM approvals WHERE kind = 'scale';
ALTER TABLE approvals DROP COLUMN replicas;
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_check CHECK (kind IN ('request', 'extension'));
DROP TABLE pool_members;
ALTER TABLE requests DROP CONSTRAINT requests_replicas, DROP COLUMN replicas, DROP COLUMN pool;
