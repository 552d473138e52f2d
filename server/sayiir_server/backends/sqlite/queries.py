"""Every SQL statement of the SQLite backend, named and described in one place.

Times are microseconds since the epoch (`*_us`). Named parameters (`:name`)
are bound from dicts by the storage module.
"""

from __future__ import annotations

# --- snapshots -----------------------------------------------------------------------------------------------------

LOAD_SNAPSHOT = "SELECT snapshot FROM snapshots WHERE instance_id = :instance_id"

SNAPSHOT_EXISTS = "SELECT 1 FROM snapshots WHERE instance_id = :instance_id"

CURRENT_TASK = "SELECT current_task_id, state FROM snapshots WHERE instance_id = :instance_id"

# Insert or overwrite a snapshot row with its derived index columns.
UPSERT_SNAPSHOT = """
INSERT INTO snapshots (
    instance_id, snapshot, state, position, current_task_id, ready_task_id, priority, updated_at_us,
    wake_at_us, signal_name, due_at_us, retry_at_us, last_failed_worker, tags, definition_hash
) VALUES (
    :instance_id, :snapshot, :state, :position, :current_task_id, :ready_task_id, :priority, :updated_at_us,
    :wake_at_us, :signal_name, :due_at_us, :retry_at_us, :last_failed_worker, :tags, :definition_hash
)
ON CONFLICT (instance_id) DO UPDATE SET
    snapshot = excluded.snapshot, state = excluded.state, position = excluded.position,
    current_task_id = excluded.current_task_id, ready_task_id = excluded.ready_task_id,
    priority = excluded.priority, updated_at_us = excluded.updated_at_us, wake_at_us = excluded.wake_at_us,
    signal_name = excluded.signal_name, due_at_us = excluded.due_at_us, retry_at_us = excluded.retry_at_us,
    last_failed_worker = excluded.last_failed_worker, tags = excluded.tags,
    definition_hash = excluded.definition_hash
"""

# The tag rows of a snapshot: rewritten with every write (ListWorkflows by tag pages through them).
DELETE_TAGS = "DELETE FROM snapshot_tags WHERE instance_id = :instance_id"

INSERT_TAG = """
INSERT OR IGNORE INTO snapshot_tags (tag, instance_id, updated_at_us) VALUES (:tag, :instance_id, :updated_at_us)
"""

# Rows written before migration 0002 carry no definition hash column yet: filled in at start.
WITHOUT_DEFINITION = "SELECT instance_id, snapshot FROM snapshots WHERE definition_hash IS NULL LIMIT :limit"

SET_DEFINITION = "UPDATE snapshots SET definition_hash = :definition_hash WHERE instance_id = :instance_id"

GET_SECRET = "SELECT value FROM server_secrets WHERE name = :name"

PUT_SECRET_IF_ABSENT = "INSERT OR IGNORE INTO server_secrets (name, value) VALUES (:name, :value)"

DELETE_SNAPSHOT = "DELETE FROM snapshots WHERE instance_id = :instance_id"

LIST_SNAPSHOTS = "SELECT instance_id FROM snapshots ORDER BY instance_id"

# Instance ids after a cursor; TEXT's BINARY collation compares UTF-8 bytes, as paging requires.
LIST_SNAPSHOTS_PAGE = """
SELECT instance_id FROM snapshots WHERE instance_id > :after ORDER BY instance_id LIMIT :limit
"""

# --- retained task results -----------------------------------------------------------------------------------------

LOAD_RETAINED = "SELECT task_id, output FROM retained_results WHERE instance_id = :instance_id ORDER BY rowid"

DELETE_RETAINED = "DELETE FROM retained_results WHERE instance_id = :instance_id"

INSERT_RETAINED = """
INSERT OR REPLACE INTO retained_results (instance_id, task_id, output) VALUES (:instance_id, :task_id, :output)
"""

# --- signals and events --------------------------------------------------------------------------------------------

SIGNALS_OF = "SELECT kind, request FROM signals WHERE instance_id = :instance_id"

HAS_SIGNAL = """
SELECT EXISTS (SELECT 1 FROM signals WHERE instance_id = :instance_id AND kind IN (SELECT value FROM json_each(:kinds)))
"""

STORE_SIGNAL = "INSERT OR REPLACE INTO signals (instance_id, kind, request) VALUES (:instance_id, :kind, :request)"

CLEAR_SIGNAL = "DELETE FROM signals WHERE instance_id = :instance_id AND kind = :kind"

APPEND_EVENT = "INSERT INTO events (instance_id, signal_name, payload) VALUES (:instance_id, :signal_name, :payload)"

OLDEST_EVENT = """
SELECT id, payload FROM events WHERE instance_id = :instance_id AND signal_name = :signal_name ORDER BY id LIMIT 1
"""

DELETE_EVENT = "DELETE FROM events WHERE id = :id"

EVENT_BUFFERED = "SELECT 1 FROM events WHERE instance_id = :instance_id AND signal_name = :signal_name LIMIT 1"

# Keep due_at_us in step with the event FIFO of the signal an InProgress AtSignal awaits:
# due at once while an event is buffered, else at its own wake_at.
REFRESH_SIGNAL_DUE = """
UPDATE snapshots SET due_at_us = CASE
    WHEN EXISTS (SELECT 1 FROM events e WHERE e.instance_id = snapshots.instance_id
                 AND e.signal_name = snapshots.signal_name) THEN 0
    ELSE wake_at_us END
WHERE instance_id = :instance_id AND signal_name = :signal_name
"""

# --- claims --------------------------------------------------------------------------------------------------------

GET_CLAIM = """
SELECT worker_id, claimed_at_us, expires_at_us FROM claims WHERE instance_id = :instance_id AND task_id = :task_id
"""

UPSERT_CLAIM = """
INSERT OR REPLACE INTO claims (instance_id, task_id, worker_id, claimed_at_us, expires_at_us)
VALUES (:instance_id, :task_id, :worker_id, :claimed_at_us, :expires_at_us)
"""

EXTEND_CLAIM = """
UPDATE claims SET expires_at_us = :expires_at_us
WHERE instance_id = :instance_id AND task_id = :task_id AND expires_at_us IS NOT NULL
"""

DELETE_CLAIM = "DELETE FROM claims WHERE instance_id = :instance_id AND task_id = :task_id"

CLAIMS_OF = "SELECT task_id, worker_id, claimed_at_us, expires_at_us FROM claims WHERE instance_id = :instance_id"

DELETE_CLAIMS_OF = "DELETE FROM claims WHERE instance_id = :instance_id"

# --- dispatch ------------------------------------------------------------------------------------------------------

EXPIRED_CLAIMS_EXIST = """
SELECT EXISTS (SELECT 1 FROM claims WHERE expires_at_us IS NOT NULL AND expires_at_us <= :now_us)
"""

# Rule 2's prefilter: InProgress delays and signal waits that time or a buffered event released, no pending request.
DUE_IDS = """
SELECT s.instance_id FROM snapshots s
WHERE s.due_at_us IS NOT NULL AND s.due_at_us <= :now_us
  AND NOT EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = s.instance_id)
ORDER BY s.due_at_us
LIMIT :limit
"""

# The engine's timer: the earliest due time of a row no pending request holds back, by the snapshots_due index
# (due_at_us is the row's wake_at_us, or 0 while its awaited event is buffered: due at once).
EARLIEST_DUE = """
SELECT s.due_at_us FROM snapshots s
WHERE s.due_at_us IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = s.instance_id)
ORDER BY s.due_at_us
LIMIT 1
"""

DELETE_EXPIRED_CLAIMS = (
    "DELETE FROM claims WHERE expires_at_us IS NOT NULL AND expires_at_us <= :now_us RETURNING instance_id"
)

# What a row is decided on, beside its snapshot: a pending request, and the claim on its ready task.
_FACTS = """
    EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = s.instance_id) AS signalled,
    c.worker_id, c.claimed_at_us, c.expires_at_us
"""

_CLAIM_OF_READY_TASK = "LEFT JOIN claims c ON c.instance_id = s.instance_id AND c.task_id = s.ready_task_id"

# The rows of some due instances, with their facts, in instance id order (the write lock is already held).
DUE_ROWS = """
SELECT s.snapshot, EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = s.instance_id) AS signalled
FROM snapshots s
WHERE s.instance_id IN (SELECT value FROM json_each(:instance_ids))
ORDER BY s.instance_id
"""

SIGNALLED_AMONG = """
SELECT DISTINCT instance_id FROM signals WHERE instance_id IN (SELECT value FROM json_each(:instance_ids))
"""

# The distinct priorities of ready tasks, by skip-scan: one index seek per priority, not one row read per task.
READY_PRIORITIES = """
WITH RECURSIVE levels (priority) AS (
    SELECT MIN(priority) FROM snapshots WHERE ready_task_id IS NOT NULL
    UNION ALL
    SELECT (SELECT MIN(s.priority) FROM snapshots s
            WHERE s.ready_task_id IS NOT NULL AND s.priority > levels.priority)
    FROM levels WHERE levels.priority IS NOT NULL
)
SELECT priority FROM levels WHERE priority IS NOT NULL
"""

# Prefilters of rule 3 (each only narrows; the engine decides): no pending request, no live claim on the ready
# task, retry backoff elapsed, every task tag among the worker's (:worker_tags NULL takes anything).
_CANDIDATE_PREFILTER = """
  AND (s.retry_at_us IS NULL OR s.retry_at_us <= :now_us)
  AND NOT EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = s.instance_id)
  AND (c.worker_id IS NULL OR (c.expires_at_us IS NOT NULL AND c.expires_at_us <= :now_us))
  AND (:worker_tags IS NULL OR NOT EXISTS (
        SELECT 1 FROM json_each(s.tags) t WHERE t.value NOT IN (SELECT w.value FROM json_each(:worker_tags) w)))
  AND (:definition_hashes IS NULL OR s.definition_hash IS NULL
       OR hex(s.definition_hash) IN (SELECT upper(d.value) FROM json_each(:definition_hashes) d))
"""

# One page of the ready tasks of one priority, by (updated_at, instance id) after a keyset cursor: those the
# worker did not fail last (:failed_by NULL), or only those it did.
READY_PAGE = f"""
SELECT s.snapshot, {_FACTS} FROM snapshots s
{_CLAIM_OF_READY_TASK}
WHERE s.ready_task_id IS NOT NULL AND s.priority = :priority
  AND (s.updated_at_us, s.instance_id) > (:after_us, :after_id)
  AND (CASE WHEN :failed_by IS NULL
            THEN s.last_failed_worker IS NULL OR s.last_failed_worker <> :worker_id
            ELSE s.last_failed_worker = :failed_by END)
  {_CANDIDATE_PREFILTER}
ORDER BY s.updated_at_us, s.instance_id
LIMIT :page_size
"""

# find_hinted_task: the named instance, if its ready task is the hinted one.
HINTED_ROW = f"""
SELECT s.snapshot, {_FACTS} FROM snapshots s
{_CLAIM_OF_READY_TASK}
WHERE s.instance_id = :instance_id AND s.ready_task_id = :task_id
"""

# --- ListWorkflows -------------------------------------------------------------------------------------------------
# SQLite plans one statement for every parameter value, so each filter shape gets its own statement, driven by
# the index that serves it: the tag rows, the definition hash, a single state, or every row; newest first, or
# by instance id. The remaining filters are tested on the rows the index yields.

_LIST_COLUMNS = """
SELECT s.snapshot, c.worker_id, c.claimed_at_us, c.expires_at_us
"""

_LIST_CLAIM = "LEFT JOIN claims c ON c.instance_id = s.instance_id AND c.task_id = s.current_task_id"

_LIST_FILTERS = {
    "states": "s.state IN (SELECT value FROM json_each(:states))",
    "definition_hash": "s.definition_hash = :definition_hash",
    "tag": "EXISTS (SELECT 1 FROM snapshot_tags t WHERE t.tag = :tag AND t.instance_id = s.instance_id)",
    "prefix": "s.instance_id >= :prefix AND substr(s.instance_id, 1, length(:prefix)) = :prefix",
    "updated_after": "s.updated_at_us >= :updated_after_us",
    "updated_before": "s.updated_at_us < :updated_before_us",
}

_NEWEST_FIRST_CURSOR = "(s.updated_at_us, s.instance_id) < (:cursor_us, :cursor_id)"
_BY_ID_CURSOR = "s.instance_id > :cursor_id"


def list_workflows_statement(
    filters: frozenset[str], newest_first: bool, has_cursor: bool, state_count: int = 0
) -> str:
    """The statement of one ListWorkflows shape: the filters given (keys of _LIST_FILTERS), order, cursor.

    With `states` given (newest first, no tag), each state is read from its own range of snapshots_by_state in
    update order, parameters :state_0 … :state_{state_count-1}: an IN over the states would sort every matching row.
    """
    if "states" in filters and newest_first and "tag" not in filters:
        return _per_state_statement(filters - {"states"}, has_cursor, state_count)
    conditions = [_LIST_FILTERS[name] for name in sorted(filters)]
    if has_cursor:
        conditions.append(_NEWEST_FIRST_CURSOR if newest_first else _BY_ID_CURSOR)
    source = "snapshots s"
    if "tag" in filters and newest_first:
        # Driven by the tag's rows in update order: only the matching instances are read.
        source = "snapshot_tags t JOIN snapshots s ON s.instance_id = t.instance_id"
        conditions[conditions.index(_LIST_FILTERS["tag"])] = "t.tag = :tag"
    where = " AND ".join(conditions) or "1"
    order = "s.updated_at_us DESC, s.instance_id DESC" if newest_first else "s.instance_id"
    return f"{_LIST_COLUMNS} FROM {source} {_LIST_CLAIM} WHERE {where} ORDER BY {order} LIMIT :limit"


def _per_state_statement(filters: frozenset[str], has_cursor: bool, state_count: int) -> str:
    conditions = [_LIST_FILTERS[name] for name in sorted(filters)]
    if has_cursor:
        conditions.append(_NEWEST_FIRST_CURSOR)
    order = "s.updated_at_us DESC, s.instance_id DESC"
    parts = [
        f"SELECT * FROM ({_LIST_COLUMNS}, s.updated_at_us, s.instance_id FROM snapshots s {_LIST_CLAIM} "
        f"WHERE {' AND '.join([f's.state = :state_{index}', *conditions])} ORDER BY {order} LIMIT :limit)"
        for index in range(state_count)
    ]
    return " UNION ALL ".join(parts) + " ORDER BY 5 DESC, 6 DESC LIMIT :limit"


SIGNALS_AMONG = """
SELECT instance_id, kind, request FROM signals WHERE instance_id IN (SELECT value FROM json_each(:instance_ids))
"""
