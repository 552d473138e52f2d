-- 0002: what ClaimAvailableTasks filters on, what ListWorkflows pages through, and the server's secrets.
-- Never edit this file once released: a schema change is a new numbered file.

-- The snapshot's definition hash, derived on every write like the other columns. Rows written before this
-- migration hold NULL until the backend fills them in at start (one pass, in batches).
ALTER TABLE snapshots ADD COLUMN definition_hash BLOB;
CREATE INDEX snapshots_without_definition ON snapshots (instance_id) WHERE definition_hash IS NULL;

-- ListWorkflows: newest first (or oldest) overall, per state, per definition hash.
CREATE INDEX snapshots_by_update ON snapshots (updated_at_us, instance_id);
CREATE INDEX snapshots_by_state ON snapshots (state, updated_at_us, instance_id);
CREATE INDEX snapshots_by_definition ON snapshots (definition_hash, updated_at_us, instance_id);

-- ListWorkflows by tag: one row per (tag, instance) of the current task's tags, kept with every write.
CREATE TABLE snapshot_tags (
    tag           TEXT NOT NULL,
    instance_id   TEXT NOT NULL,
    updated_at_us INTEGER NOT NULL,
    PRIMARY KEY (tag, instance_id)
) WITHOUT ROWID;
CREATE INDEX snapshot_tags_by_update ON snapshot_tags (tag, updated_at_us, instance_id);
CREATE INDEX snapshot_tags_of_instance ON snapshot_tags (instance_id);
INSERT INTO snapshot_tags (tag, instance_id, updated_at_us)
    SELECT DISTINCT t.value, s.instance_id, s.updated_at_us FROM snapshots s, json_each(s.tags) t;

-- Keys the server keeps across restarts (the page tokens' signing key), created on first use.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
