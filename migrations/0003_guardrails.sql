-- +goose Up

-- A team's hard limits on what its VMs use at once. NULL means no limit on
-- that resource; a team without a row has no quota at all. Usage is counted
-- from requests (every request whose VM exists or is about to), never stored,
-- so it cannot drift from the requests it sums.
CREATE TABLE team_quotas (
    team_id    bigint PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    vcpu       int CHECK (vcpu >= 0),
    memory_mib int CHECK (memory_mib >= 0),
    vms        int CHECK (vms >= 0),
    disk_gib   int CHECK (disk_gib >= 0),
    updated_by bigint REFERENCES users (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Approval rules, set by the platform team per team and template; a NULL team
-- or template means "every". The most specific rule that matches a request
-- applies: team and template, then team, then template, then the default.
CREATE TABLE approval_rules (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id      bigint REFERENCES teams (id) ON DELETE CASCADE,
    template_id  bigint REFERENCES templates (id) ON DELETE CASCADE,
    -- false: every request in scope goes to a person, whatever the template says
    auto_approve boolean NOT NULL DEFAULT true,
    -- the largest size approved without a person (by vCPU, then memory); '' = no limit
    max_size     text NOT NULL DEFAULT '',
    updated_by   bigint REFERENCES users (id),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (team_id, template_id)
);

-- What a person must decide: a request that policy did not approve, or a
-- lease extension beyond policy. A request has at most one open approval, and
-- a decided approval records who decided, when and why.
CREATE TABLE approvals (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   bigint NOT NULL REFERENCES requests (id),
    kind         text NOT NULL CHECK (kind IN ('request', 'extension')),
    extend_days  int NOT NULL DEFAULT 0,
    reasons      text NOT NULL,
    requested_by bigint NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    verdict      text CHECK (verdict IN ('approved', 'rejected', 'withdrawn')),
    decided_by   bigint REFERENCES users (id),
    decider      text NOT NULL DEFAULT '',
    decided_at   timestamptz,
    comment      text NOT NULL DEFAULT '',
    CHECK ((verdict IS NULL) = (decided_at IS NULL))
);
CREATE UNIQUE INDEX approvals_open ON approvals (request_id) WHERE verdict IS NULL;
CREATE INDEX approvals_queue ON approvals (created_at, id) WHERE verdict IS NULL;
CREATE INDEX approvals_request ON approvals (request_id, id);

-- Lease reminders already sent, per expiry: extending a lease moves
-- expires_at, so the reminders for the new expiry are sent again.
CREATE TABLE lease_notices (
    request_id bigint NOT NULL REFERENCES requests (id),
    kind       text NOT NULL CHECK (kind IN ('3d', '1d')),
    expires_at timestamptz NOT NULL,
    sent_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, kind, expires_at)
);

-- The lease sweep looks for requests by expiry.
CREATE INDEX requests_lease ON requests (expires_at)
    WHERE state IN ('approved', 'provisioning', 'running', 'stopped', 'failed', 'expired');

-- Usage per team (quota checks).
CREATE INDEX requests_team_usage ON requests (team_id)
    WHERE state IN ('approved', 'provisioning', 'running', 'stopped', 'failed', 'expired');

-- Outbound notifications (approval needed, VM ready, lease expiring, ...),
-- written in the transaction of the change they announce.
CREATE TABLE notifications (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL,
    request_id bigint REFERENCES requests (id),
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per notification and webhook endpoint. The endpoint is a label
-- (host and a hash of the URL), never the URL: webhook URLs often hold secrets.
CREATE TABLE webhook_deliveries (
    notification_id bigint NOT NULL REFERENCES notifications (id),
    endpoint        text NOT NULL,
    status          text NOT NULL CHECK (status IN ('retrying', 'delivered', 'failed')),
    attempts        int NOT NULL DEFAULT 0,
    last_status     int NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    PRIMARY KEY (notification_id, endpoint)
);
CREATE INDEX webhook_deliveries_undelivered ON webhook_deliveries (updated_at DESC) WHERE status <> 'delivered';

-- +goose Down
DROP TABLE webhook_deliveries, notifications, lease_notices, approvals, approval_rules, team_quotas;
DROP INDEX requests_lease, requests_team_usage;
