-- +goose Up
-- What each team's VMs use, kept as one row per team instead of summed over
-- its requests on every check. Submits used to lock the team row for their
-- whole transaction so that concurrent quota checks were counted one after
-- another; one team's submits then ran one at a time. Now the row is kept by
-- a deferred trigger on requests: every change that takes or frees quota
-- (submit, approve, scale, rebuild, delete, expire, fail, reject) adds its
-- difference when its transaction commits, and a change that would take a
-- team over its quota fails there. The row is locked only from that update
-- to the commit, so one team's submits overlap everywhere else.
CREATE TABLE team_usage (
    team_id    bigint PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    vms        bigint NOT NULL DEFAULT 0,
    vcpu       bigint NOT NULL DEFAULT 0,
    memory_mib bigint NOT NULL DEFAULT 0,
    disk_gib   bigint NOT NULL DEFAULT 0
);

-- The states in which a request's VM exists or is about to: they count
-- against the team's quota (store.usageStates says the same).
CREATE FUNCTION request_counts_in_quota(state text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT state IN ('approved', 'provisioning', 'running', 'stopped', 'failed', 'expired') $$;

CREATE FUNCTION template_root_disk_gib(tpl bigint, ver int) RETURNS int
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce((SELECT (spec->>'rootDiskGiB')::int FROM template_versions
                           WHERE template_id = tpl AND version = ver), 0) $$;

INSERT INTO team_usage (team_id, vms, vcpu, memory_mib, disk_gib)
SELECT t.id, coalesce(sum(r.replicas), 0), coalesce(sum(r.vcpu * r.replicas), 0),
       coalesce(sum(r.memory_mib * r.replicas), 0),
       coalesce(sum(template_root_disk_gib(r.template_id, r.template_version) * r.replicas), 0)
FROM teams t LEFT JOIN requests r ON r.team_id = t.id AND request_counts_in_quota(r.state)
GROUP BY t.id;

-- team_usage_add adds a difference to a team's usage and, when it grows a
-- limited resource beyond the team's quota, refuses the change with a
-- check_violation on constraint team_quota whose detail says, in JSON, the
-- team, its use before the change, what the change adds and the limits
-- (store.quotaRefusal reads it).
-- +goose StatementBegin
CREATE FUNCTION team_usage_add(team bigint, d_vms bigint, d_vcpu bigint, d_mem bigint, d_disk bigint) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    u team_usage;
    q team_quotas;
BEGIN
    IF d_vms = 0 AND d_vcpu = 0 AND d_mem = 0 AND d_disk = 0 THEN
        RETURN;
    END IF;
    INSERT INTO team_usage AS tu (team_id, vms, vcpu, memory_mib, disk_gib)
    VALUES (team, d_vms, d_vcpu, d_mem, d_disk)
    ON CONFLICT (team_id) DO UPDATE SET vms = tu.vms + EXCLUDED.vms, vcpu = tu.vcpu + EXCLUDED.vcpu,
        memory_mib = tu.memory_mib + EXCLUDED.memory_mib, disk_gib = tu.disk_gib + EXCLUDED.disk_gib
    RETURNING tu.* INTO u;
    IF d_vms <= 0 AND d_vcpu <= 0 AND d_mem <= 0 AND d_disk <= 0 THEN
        RETURN;
    END IF;
    SELECT * INTO q FROM team_quotas WHERE team_id = team;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF (d_vms > 0 AND u.vms > q.vms) OR (d_vcpu > 0 AND u.vcpu > q.vcpu)
       OR (d_mem > 0 AND u.memory_mib > q.memory_mib) OR (d_disk > 0 AND u.disk_gib > q.disk_gib) THEN
        RAISE EXCEPTION 'team % would exceed its quota', team
            USING ERRCODE = 'check_violation', CONSTRAINT = 'team_quota', TABLE = 'team_usage',
                  DETAIL = json_build_object(
                      'team', (SELECT name FROM teams WHERE id = team),
                      'used', json_build_object('vms', u.vms - d_vms, 'vcpu', u.vcpu - d_vcpu,
                                                'memoryMiB', u.memory_mib - d_mem, 'diskGiB', u.disk_gib - d_disk),
                      'adds', json_build_object('vms', d_vms, 'vcpu', d_vcpu, 'memoryMiB', d_mem, 'diskGiB', d_disk),
                      'limit', json_build_object('vms', q.vms, 'vcpu', q.vcpu, 'memoryMiB', q.memory_mib, 'diskGiB', q.disk_gib))::text;
    END IF;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION requests_track_usage() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    o_vms bigint := 0; o_vcpu bigint := 0; o_mem bigint := 0; o_disk bigint := 0;
    n_vms bigint := 0; n_vcpu bigint := 0; n_mem bigint := 0; n_disk bigint := 0;
BEGIN
    IF TG_OP <> 'INSERT' AND request_counts_in_quota(OLD.state) THEN
        o_vms := OLD.replicas;
        o_vcpu := OLD.vcpu * OLD.replicas;
        o_mem := OLD.memory_mib * OLD.replicas;
        o_disk := template_root_disk_gib(OLD.template_id, OLD.template_version) * OLD.replicas;
    END IF;
    IF TG_OP <> 'DELETE' AND request_counts_in_quota(NEW.state) THEN
        n_vms := NEW.replicas;
        n_vcpu := NEW.vcpu * NEW.replicas;
        n_mem := NEW.memory_mib * NEW.replicas;
        n_disk := template_root_disk_gib(NEW.template_id, NEW.template_version) * NEW.replicas;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.team_id = NEW.team_id THEN
        -- One difference, so that a change that grows nothing is never refused.
        PERFORM team_usage_add(NEW.team_id, n_vms - o_vms, n_vcpu - o_vcpu, n_mem - o_mem, n_disk - o_disk);
    ELSE
        IF TG_OP <> 'INSERT' THEN
            PERFORM team_usage_add(OLD.team_id, -o_vms, -o_vcpu, -o_mem, -o_disk);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM team_usage_add(NEW.team_id, n_vms, n_vcpu, n_mem, n_disk);
        END IF;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- Deferred to the commit, so the usage row is locked only from there to the
-- end of the transaction. WHEN skips the changes that cannot move usage.
CREATE CONSTRAINT TRIGGER requests_usage_insert AFTER INSERT ON requests
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (request_counts_in_quota(NEW.state))
    EXECUTE FUNCTION requests_track_usage();
CREATE CONSTRAINT TRIGGER requests_usage_update AFTER UPDATE ON requests
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (request_counts_in_quota(OLD.state) IS DISTINCT FROM request_counts_in_quota(NEW.state)
          OR (request_counts_in_quota(NEW.state)
              AND (OLD.team_id, OLD.replicas, OLD.vcpu, OLD.memory_mib, OLD.template_id, OLD.template_version)
                  IS DISTINCT FROM (NEW.team_id, NEW.replicas, NEW.vcpu, NEW.memory_mib, NEW.template_id, NEW.template_version)))
    EXECUTE FUNCTION requests_track_usage();
CREATE CONSTRAINT TRIGGER requests_usage_delete AFTER DELETE ON requests
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (request_counts_in_quota(OLD.state))
    EXECUTE FUNCTION requests_track_usage();

-- +goose Down
DROP TRIGGER requests_usage_delete ON requests;
DROP TRIGGER requests_usage_update ON requests;
DROP TRIGGER requests_usage_insert ON requests;
DROP FUNCTION requests_track_usage();
DROP FUNCTION team_usage_add(bigint, bigint, bigint, bigint, bigint);
DROP TABLE team_usage;
DROP FUNCTION template_root_disk_gib(bigint, int);
DROP FUNCTION request_counts_in_quota(text);
