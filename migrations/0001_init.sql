-- +goose Up
CREATE TABLE teams (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    namespace  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login        text NOT NULL UNIQUE,
    display_name text NOT NULL,
    email        text NOT NULL DEFAULT '',
    role         text NOT NULL CHECK (role IN ('developer', 'platform', 'manager')),
    team_id      bigint REFERENCES teams (id),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    hash         bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE TABLE templates (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    current_version  int NOT NULL DEFAULT 0,
    deprecated_at    timestamptz,
    deprecation_note text NOT NULL DEFAULT '',
    retired_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- A template version is immutable: editing a template publishes a new row.
CREATE TABLE template_versions (
    template_id bigint NOT NULL REFERENCES templates (id),
    version     int NOT NULL,
    spec        jsonb NOT NULL,
    created_by  bigint REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, version)
);

-- +goose StatementBegin
CREATE FUNCTION paddock_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER template_versions_immutable BEFORE UPDATE OR DELETE ON template_versions
    FOR EACH ROW EXECUTE FUNCTION paddock_forbid_change();

CREATE TABLE requests (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id          bigint NOT NULL REFERENCES teams (id),
    requester_id     bigint NOT NULL REFERENCES users (id),
    template_id      bigint NOT NULL,
    template_version int NOT NULL,
    size             text NOT NULL,
    vcpu             int NOT NULL,
    memory_mib       int NOT NULL,
    name             text NOT NULL,
    ssh_public_key   text NOT NULL,
    lease_days       int NOT NULL,
    justification    text NOT NULL DEFAULT '',
    state            text NOT NULL CHECK (state IN ('pending_approval', 'approved', 'provisioning', 'running',
                                                    'stopped', 'failed', 'rejected', 'expired', 'deleted')),
    state_reason     text NOT NULL DEFAULT '',
    decision         text NOT NULL DEFAULT '',
    -- what the owner last asked of the VM: running, stopped or deleted; the
    -- watcher compares it with what it sees to tell drift from requested change
    desired          text NOT NULL DEFAULT 'running',
    idempotency_key  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    FOREIGN KEY (template_id, template_version) REFERENCES template_versions (template_id, version),
    UNIQUE (requester_id, idempotency_key)
);

-- A VM name is taken within a team for as long as its VM may exist.
CREATE UNIQUE INDEX requests_live_name ON requests (team_id, name) WHERE state NOT IN ('deleted', 'rejected');
CREATE INDEX requests_team_created ON requests (team_id, created_at DESC, id DESC);
CREATE INDEX requests_requester_created ON requests (requester_id, created_at DESC, id DESC);
CREATE INDEX requests_created ON requests (created_at DESC, id DESC);

-- What Paddock knows of the VirtualMachine a request made; the cluster is the truth.
CREATE TABLE vms (
    request_id  bigint PRIMARY KEY REFERENCES requests (id),
    namespace   text NOT NULL,
    name        text NOT NULL,
    uid         text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT '',
    ip          text NOT NULL DEFAULT '',
    message     text NOT NULL DEFAULT '',
    manifest    text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The append-only history of every request: who, when, from, to, why.
CREATE TABLE events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id bigint NOT NULL REFERENCES requests (id),
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id   bigint REFERENCES users (id),
    actor      text NOT NULL,
    kind       text NOT NULL,
    from_state text NOT NULL DEFAULT '',
    to_state   text NOT NULL DEFAULT '',
    reason     text NOT NULL DEFAULT ''
);
CREATE INDEX events_request ON events (request_id, id);

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION paddock_forbid_change();

-- The simulated cluster keeps its objects here so that `portal dev` restarts keep its VMs.
CREATE TABLE sim_objects (
    kind      text NOT NULL,
    namespace text NOT NULL,
    name      text NOT NULL,
    body      jsonb NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);

-- Web sessions, in the layout of github.com/alexedwards/scs/pgxstore.
CREATE TABLE sessions (
    token  text PRIMARY KEY,
    data   bytea NOT NULL,
    expiry timestamptz NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry);

-- +goose Down
DROP TABLE sessions, sim_objects, events, vms, requests, template_versions, templates, api_tokens, users, teams;
DROP FUNCTION paddock_forbid_change;
