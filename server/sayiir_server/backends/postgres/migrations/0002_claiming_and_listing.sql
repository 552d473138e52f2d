-- 0002: what ClaimAvailableTasks filters on, what ListWorkflows pages through, and the server's secrets.
-- Never edit this file once released: a schema change is a new numbered file.

-- The snapshot's definition hash, derived on every write like the other columns. Rows written before this
-- migration hold NULL until a replica fills them in at start (in batches, under the migration lock).
ALTER TABLE snapshots ADD COLUMN definition_hash bytea;
CREATE INDEX snapshots_without_definition ON snapshots (instance_id) WHERE definition_hash IS NULL;

-- ListWorkflows: newest first (or oldest) overall, per state, per definition hash; by tag through GIN.
CREATE INDEX snapshots_by_update ON snapshots (updated_at, instance_id);
CREATE INDEX snapshots_by_state ON snapshots (state, updated_at, instance_id);
CREATE INDEX snapshots_by_definition ON snapshots (definition_hash, updated_at, instance_id);
CREATE INDEX snapshots_by_tag ON snapshots USING gin (tags);

-- Keys the server keeps across restarts and shares between replicas (the page tokens' signing key).
CREATE TABLE server_secrets (
    name  text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);
