-- 0001: the initial schema of the SQLite backend.
-- Never edit this file once released: a schema change is a new numbered file.
-- Times are INTEGER microseconds since the Unix epoch (the precision protobuf
-- timestamps keep when read as datetimes), so SQL and Python order them alike.

-- One row per workflow instance: the serialized sayiir.persistence.v1.WorkflowSnapshot
-- plus the columns dispatch filters and orders by, derived from it on every write.
CREATE TABLE snapshots (
    id                 INTEGER PRIMARY KEY,
    instance_id        TEXT NOT NULL UNIQUE,
    snapshot           BLOB NOT NULL,
    -- State oneof name: in_progress, completed, failed, cancelled, paused.
    state              TEXT NOT NULL,
    -- Position oneof name while InProgress (at_task, at_delay, at_signal, ...), else NULL.
    position           TEXT,
    -- The AtTask task id while InProgress, else NULL.
    current_task_id    BLOB,
    -- current_task_id when that task has not completed and has an input: the task dispatch may hand out.
    ready_task_id      BLOB,
    -- task_priority, 3 when absent.
    priority           INTEGER NOT NULL,
    updated_at_us      INTEGER NOT NULL,
    -- wake_at of an InProgress AtDelay or AtSignal position.
    wake_at_us         INTEGER,
    -- The event name an InProgress AtSignal position waits for.
    signal_name        TEXT,
    -- When find_available_tasks must advance the row: wake_at_us, or 0 once the awaited event is buffered.
    due_at_us          INTEGER,
    -- next_retry_at and last_failed_worker of the ready task's retry state.
    retry_at_us        INTEGER,
    last_failed_worker TEXT,
    -- task_tags as a JSON array of strings.
    tags               TEXT NOT NULL
);

-- Ready tasks, per priority, oldest first: one ordered range per priority holds
-- every ready task of that priority in effective-priority order.
CREATE INDEX snapshots_ready ON snapshots (priority, updated_at_us, instance_id)
    WHERE ready_task_id IS NOT NULL;

-- Ready tasks a given worker failed last (dispatched after all others to that worker).
CREATE INDEX snapshots_ready_failed_by ON snapshots (last_failed_worker)
    WHERE ready_task_id IS NOT NULL AND last_failed_worker IS NOT NULL;

-- Delays and signal waits that time or a buffered event will advance.
CREATE INDEX snapshots_due ON snapshots (due_at_us) WHERE due_at_us IS NOT NULL;

-- Pending cancel and pause requests (kind: the SignalKind enum value).
CREATE TABLE signals (
    instance_id TEXT NOT NULL,
    kind        INTEGER NOT NULL,
    request     BLOB NOT NULL,
    PRIMARY KEY (instance_id, kind)
) WITHOUT ROWID;

-- External events: one FIFO per (instance_id, signal_name), in id order.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    signal_name TEXT NOT NULL,
    payload     BLOB NOT NULL
);
CREATE INDEX events_fifo ON events (instance_id, signal_name, id);

-- Task leases, keyed by (instance, task); expires_at_us NULL never expires.
CREATE TABLE claims (
    instance_id   TEXT NOT NULL,
    task_id       BLOB NOT NULL,
    worker_id     TEXT NOT NULL,
    claimed_at_us INTEGER NOT NULL,
    expires_at_us INTEGER,
    PRIMARY KEY (instance_id, task_id)
) WITHOUT ROWID;
CREATE INDEX claims_expiry ON claims (expires_at_us) WHERE expires_at_us IS NOT NULL;

-- Task results kept after an instance Completed or Failed, for load_task_result.
CREATE TABLE retained_results (
    instance_id TEXT NOT NULL,
    task_id     BLOB NOT NULL,
    output      BLOB NOT NULL,
    PRIMARY KEY (instance_id, task_id)
);
