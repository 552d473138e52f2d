-- Snapshots with the columns dispatch filters and sorts on, pending signals, events, task claims.
--
-- The protobuf blob in snapshots.snapshot is the source of truth; every other column of that
-- table is derived from it on each write (sayiir_server.backends.postgres.rows) so that
-- FindAvailableTasks and the wakeup paths can select rows through partial indexes without
-- decoding blobs. instance_id uses the "C" collation: byte order, which is code point order,
-- the order ListSnapshots pages in.

CREATE TABLE snapshots (
    instance_id        text COLLATE "C" PRIMARY KEY,
    snapshot           bytea NOT NULL,        -- serialized WorkflowSnapshot
    state              text NOT NULL,         -- in_progress, completed, failed, cancelled or paused
    position           text,                  -- InProgress only: at_task, at_delay, at_signal, ...
    current_task_id    bytea,                 -- InProgress at AtTask: that task
    ready_task_id      bytea,                 -- current_task_id while runnable: not yet completed, input present
    priority           bigint NOT NULL,       -- task_priority, 3 when absent
    updated_at         timestamptz NOT NULL,  -- the base of priority aging
    wake_at            timestamptz,           -- InProgress AtDelay / AtSignal with a timeout: when time advances it
    signal_name        text COLLATE "C",      -- InProgress AtSignal: the event name it waits for
    tags               text[] NOT NULL,       -- task_tags
    last_failed_worker text,                  -- retry state of the ready task
    next_retry_at      timestamptz,           -- retry state of the ready task
    retained_from      bytea                  -- Completed/Failed: the last snapshot that carried task results
);

-- FindAvailableTasks walks this index once per distinct priority, oldest first.
CREATE INDEX snapshots_ready ON snapshots (priority, updated_at, instance_id)
    WHERE ready_task_id IS NOT NULL;

-- Tasks a worker failed last are offered to it only after the others (soft anti-affinity).
CREATE INDEX snapshots_ready_failed_by ON snapshots (last_failed_worker)
    WHERE ready_task_id IS NOT NULL AND last_failed_worker IS NOT NULL;

-- Delays and signal timeouts that time releases.
CREATE INDEX snapshots_wake_at ON snapshots (wake_at)
    WHERE wake_at IS NOT NULL;

-- Instances waiting for an event, matched against buffered events.
CREATE INDEX snapshots_awaiting_signal ON snapshots (instance_id, signal_name)
    WHERE signal_name IS NOT NULL;

-- Pending cancel (kind 1) and pause (kind 2) requests; they outlive a deleted snapshot.
CREATE TABLE signals (
    instance_id text COLLATE "C" NOT NULL,
    kind        smallint NOT NULL,
    request     bytea NOT NULL,               -- serialized SignalRequest
    PRIMARY KEY (instance_id, kind)
);

-- External events: one FIFO per (instance, signal name), oldest = lowest id.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    instance_id text COLLATE "C" NOT NULL,
    signal_name text COLLATE "C" NOT NULL,
    payload     bytea NOT NULL
);

CREATE INDEX events_fifo ON events (instance_id, signal_name, id);

-- One lease per (instance, task); expires_at NULL never expires.
CREATE TABLE claims (
    instance_id text COLLATE "C" NOT NULL,
    task_id     bytea NOT NULL,
    worker_id   text NOT NULL,
    claimed_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    PRIMARY KEY (instance_id, task_id)
);

CREATE INDEX claims_expires_at ON claims (expires_at)
    WHERE expires_at IS NOT NULL;
