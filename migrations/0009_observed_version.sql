-- +goose Up
-- The newest resourceVersion (etcd revision) among the objects of the last
-- observation recorded for a request's VM. Every replica watches; one whose
-- cache lags (or a watch replaying history after an outage) would otherwise
-- move a request back to a state it has left. 0: unknown.
ALTER TABLE vms ADD COLUMN observed_version bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE vms DROP COLUMN observed_version;
