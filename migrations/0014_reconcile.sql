-- +goose Up
-- One reconcile job per request replaces the provision, vm_action, rebuild
-- and pool_scale jobs. The request row says everything the job needs:
-- generation counts the changes of desired state (so a change made while
-- the request's job runs is never lost to de-duplication), and
-- restart_asked_at keeps a restart asked for until it is done.
ALTER TABLE requests
    ADD COLUMN generation bigint NOT NULL DEFAULT 0,
    ADD COLUMN restart_asked_at timestamptz;

-- Jobs an older Paddock queued and did not finish become reconcile jobs of
-- their request (River's tables exist only on a database that ran before).
-- +goose StatementBegin
DO $$
BEGIN
    IF to_regclass('river_job') IS NULL THEN
        RETURN;
    END IF;
    UPDATE requests r SET restart_asked_at = now()
    FROM river_job j
    WHERE j.kind = 'vm_action' AND j.args->>'action' = 'restart'
      AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
      AND (j.args->>'request_id')::bigint = r.id;
    -- Keep one job per request; the others are finished as done.
    UPDATE river_job j SET state = 'completed', finalized_at = now()
    WHERE j.kind IN ('provision', 'vm_action', 'rebuild', 'pool_scale')
      AND j.state IN ('available', 'pending', 'retryable', 'scheduled')
      AND EXISTS (SELECT 1 FROM river_job o
                  WHERE o.kind IN ('provision', 'vm_action', 'rebuild', 'pool_scale')
                    AND o.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
                    AND o.args->>'request_id' = j.args->>'request_id' AND o.id > j.id);
    UPDATE river_job SET kind = 'reconcile', args = jsonb_build_object('request_id', (args->>'request_id')::bigint),
        unique_key = NULL, unique_states = NULL
    WHERE kind IN ('provision', 'vm_action', 'rebuild', 'pool_scale')
      AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled');
END
$$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE requests DROP COLUMN restart_asked_at, DROP COLUMN generation;
