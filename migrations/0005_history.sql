-- +goose Up
-- Issue #7: request history (filters, keyset pages, text search, CSV) and
-- insight (lead times, approval waits, failures, showback).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- History pages are keyset-paged on (created_at DESC, id DESC). Each filter
-- has an index that starts with its column and continues in page order, so a
-- filtered page is one index range read; created_at, team_id and
-- requester_id have theirs from 0001. The other filter columns ride along
-- (INCLUDE), so that a page with several filters (a template and a state, a
-- state and a team) is found by an index-only scan that checks them in the
-- index instead of visiting the table for every candidate row.
CREATE INDEX requests_history_template ON requests (template_id, created_at DESC, id DESC)
    INCLUDE (team_id, requester_id, state);
CREATE INDEX requests_history_state ON requests (state, created_at DESC, id DESC)
    INCLUDE (team_id, requester_id, template_id);
-- Text search over name and justification: ILIKE '%term%' on this expression.
CREATE INDEX requests_history_search ON requests USING gin ((name || ' ' || justification) gin_trgm_ops);

-- Insight is read from a summary that a periodic job refreshes; these tables
-- hold it and what it is derived from.

-- Requests with events not yet folded into the summary. A statement trigger
-- on events adds them in the same transaction as the events, and the refresh
-- deletes what it has read, so nothing is missed. No unique key: writers of
-- events never wait on each other or on a refresh.
CREATE TABLE insight_dirty (request_id bigint NOT NULL);

-- +goose StatementBegin
CREATE FUNCTION paddock_insight_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO insight_dirty (request_id) SELECT DISTINCT request_id FROM new_events;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER events_insight_dirty AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION paddock_insight_dirty();

-- What the statistics need of each request, derived from its events. Like
-- request_runs it is derived data, rebuilt from events: no foreign keys, so
-- that rebuilding a million rows stays quick.
CREATE TABLE request_facts (
    request_id  bigint PRIMARY KEY,
    team_id     bigint NOT NULL,
    template_id bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    -- auto (approved by policy), approved or rejected (by a person),
    -- withdrawn (before a decision), pending
    outcome     text NOT NULL,
    decided_at  timestamptz,  -- when a person approved or rejected it
    running_at  timestamptz,  -- when its VM first ran
    failed_at   timestamptz,  -- when it first failed
    fail_reason text NOT NULL DEFAULT ''
);
CREATE INDEX request_facts_created ON request_facts (created_at);

-- Each stretch of time a request's VM was running, for showback.
CREATE TABLE request_runs (
    request_id  bigint NOT NULL,
    started_at  timestamptz NOT NULL,
    stopped_at  timestamptz,  -- NULL while it runs
    team_id     bigint NOT NULL,
    template_id bigint NOT NULL,
    vcpu        int NOT NULL,
    memory_mib  int NOT NULL,
    PRIMARY KEY (request_id, started_at)
);
-- A week's showback needs the stretches that end after the week starts: the
-- VMs still running and those stopped since. (A GiST index on the range
-- would also bound the start, but costs ten times as much to write.)
CREATE INDEX request_runs_until ON request_runs ((coalesce(stopped_at, 'infinity')));

-- The summary. Weeks start on Monday, UTC. team_id and template_id 0 mean
-- "all teams" and "all templates". Durations are in seconds: lead is from
-- request to first running, wait is from request to a person's decision;
-- both count a request in the week it was made.
CREATE TABLE insight_weekly (
    template_id      bigint NOT NULL,
    team_id          bigint NOT NULL,
    week             date NOT NULL,
    submitted        int NOT NULL DEFAULT 0,
    auto_approved    int NOT NULL DEFAULT 0,
    approved         int NOT NULL DEFAULT 0,
    rejected         int NOT NULL DEFAULT 0,
    withdrawn        int NOT NULL DEFAULT 0,
    failed           int NOT NULL DEFAULT 0,
    reached_running  int NOT NULL DEFAULT 0,
    lead_p50         double precision,
    lead_p90         double precision,
    lead_max         double precision,
    wait_n           int NOT NULL DEFAULT 0,
    wait_p50         double precision,
    wait_p90         double precision,
    wait_max         double precision,
    -- showback: VMs that ran during the week, and what they used while running
    active_vms       int NOT NULL DEFAULT 0,
    vcpu_hours       double precision NOT NULL DEFAULT 0,
    memory_gib_hours double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (template_id, team_id, week)
);
CREATE INDEX insight_weekly_team ON insight_weekly (team_id, week);

-- The same request statistics over the last `weeks` weeks (this week included).
CREATE TABLE insight_period (
    weeks           int NOT NULL,
    template_id     bigint NOT NULL,
    team_id         bigint NOT NULL,
    submitted       int NOT NULL DEFAULT 0,
    auto_approved   int NOT NULL DEFAULT 0,
    approved        int NOT NULL DEFAULT 0,
    rejected        int NOT NULL DEFAULT 0,
    withdrawn       int NOT NULL DEFAULT 0,
    failed          int NOT NULL DEFAULT 0,
    reached_running int NOT NULL DEFAULT 0,
    lead_p50        double precision,
    lead_p90        double precision,
    lead_max        double precision,
    wait_n          int NOT NULL DEFAULT 0,
    wait_p50        double precision,
    wait_p90        double precision,
    wait_max        double precision,
    PRIMARY KEY (weeks, template_id, team_id)
);

-- Failed requests of the period by reason (the reason's first sentence).
CREATE TABLE insight_failures (
    weeks       int NOT NULL,
    template_id bigint NOT NULL,
    team_id     bigint NOT NULL,
    reason      text NOT NULL,
    failures    int NOT NULL,
    PRIMARY KEY (weeks, template_id, team_id, reason)
);

-- When the summary was last refreshed; one row.
CREATE TABLE insight_meta (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    refreshed_at   timestamptz NOT NULL,
    refreshed_week date NOT NULL
);

-- Requests made before this migration are summarised by the first refresh.
INSERT INTO insight_dirty (request_id) SELECT id FROM requests;

-- +goose Down
DROP TABLE insight_meta, insight_failures, insight_period, insight_weekly, request_runs, request_facts;
DROP TRIGGER events_insight_dirty ON events;
DROP FUNCTION paddock_insight_dirty;
DROP TABLE insight_dirty;
DROP INDEX requests_history_search, requests_history_state, requests_history_template;
