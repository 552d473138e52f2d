"""Every SQL statement of the PostgreSQL backend, named and described in one place.

Snapshot writes all share one shape: the row values $1..$14 in column order
(rows.SnapshotRow), then $15, the wakeup NOTIFY payload or NULL, $16, the
NOTIFY channel (one per schema), $17, whether the row keeps the task results
of the row it replaces (the engine's SNAP-RETAIN decision), and $18, the states
of a stored row the write may not replace (SNAP-1.4: finals stay final). The statement
announces the task (pg_notify, delivered only when the transaction commits)
unless the replaced row was already at that same task, and returns one row
when it wrote, naming the instance, whose `announced` says whether it did (the
writing replica hands that hint to its own hub itself, after the commit).
"""

from __future__ import annotations

_COLUMNS = """
    instance_id, snapshot, state, position, current_task_id, ready_task_id, priority,
    updated_at, wake_at, signal_name, tags, last_failed_worker, next_retry_at, definition_hash
"""

_VALUES = """
    $1::text, $2::bytea, $3::text, $4::text, $5::bytea, $6::bytea, $7::bigint,
    $8::timestamptz, $9::timestamptz, $10::text, $11::text[], $12::text, $13::timestamptz, $14::bytea
"""

# With $17 the row keeps the results of the one it replaces: those its snapshot carried (a row that keeps
# nothing beside it carries its results itself), else what it kept (domain.snapshots.results_to_keep).
_OVERWRITE = """
    ON CONFLICT (instance_id) DO UPDATE SET
        snapshot = excluded.snapshot, state = excluded.state, position = excluded.position,
        current_task_id = excluded.current_task_id, ready_task_id = excluded.ready_task_id,
        priority = excluded.priority, updated_at = excluded.updated_at, wake_at = excluded.wake_at,
        signal_name = excluded.signal_name, tags = excluded.tags,
        last_failed_worker = excluded.last_failed_worker, next_retry_at = excluded.next_retry_at,
        definition_hash = excluded.definition_hash,
        retained_from = CASE WHEN $17::boolean THEN COALESCE(s.retained_from, s.snapshot) END
    WHERE s.state <> ALL($18::text[])
"""

# The replaced row's task, read without a lock: inside a composite the row is already locked, so this is
# exact; two plain saves of one instance racing each other may announce a task twice or not at all, which
# hints (advisory: workers also poll) tolerate.
_PREVIOUS = "previous AS (SELECT current_task_id FROM snapshots WHERE instance_id = $1::text)"

_ANNOUNCE = """
SELECT $1::text AS instance_id, announced, CASE WHEN announced THEN pg_notify($16::text, $15::text) END AS notified
FROM (
    SELECT $15::text IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM previous WHERE previous.current_task_id = $5::bytea) AS announced
    FROM saved
) announcement
"""

SAVE_SNAPSHOT = f"""
WITH {_PREVIOUS},
saved AS (
    INSERT INTO snapshots AS s ({_COLUMNS}) VALUES ({_VALUES})
    {_OVERWRITE}
    RETURNING 1
)
{_ANNOUNCE}
"""
"""Insert or overwrite a snapshot (also the write of every read-modify-write transaction)."""

# A fenced write locks the snapshot row before the claim row, the order a claimer locks them in (the ready row
# FOR UPDATE, then its claim): locked the other way round, a completion and a claimer who met the same row
# deadlock. The count(*) makes the claim's condition wait for the row lock without depending on the row.
_ROW_FIRST = "row_lock AS (SELECT 1 FROM snapshots WHERE instance_id = $1::text FOR UPDATE)"
_AFTER_ROW_LOCK = "(SELECT count(*) FROM row_lock) >= 0"

SAVE_SNAPSHOT_FENCED = f"""
WITH {_ROW_FIRST},
claim AS (
    SELECT 1 FROM claims
    WHERE instance_id = $1::text AND task_id = $19::bytea AND worker_id = $20::text
      AND (expires_at IS NULL OR expires_at > $21::timestamptz) AND {_AFTER_ROW_LOCK}
    FOR UPDATE
),
{_PREVIOUS},
saved AS (
    INSERT INTO snapshots AS s ({_COLUMNS}) SELECT {_VALUES} WHERE EXISTS (SELECT 1 FROM claim)
    {_OVERWRITE}
    RETURNING 1
)
{_ANNOUNCE}
"""
"""Save only while $20 holds a live claim on ($1, $19) at $21; the claim row stays locked until commit."""

SAVE_SNAPSHOT_AND_RELEASE = f"""
WITH {_ROW_FIRST},
claim AS (
    DELETE FROM claims
    WHERE instance_id = $1::text AND task_id = $19::bytea AND worker_id = $20::text
      AND (expires_at IS NULL OR expires_at > $21::timestamptz) AND {_AFTER_ROW_LOCK}
      AND NOT EXISTS (SELECT 1 FROM snapshots f WHERE f.instance_id = $1::text AND f.state = ANY($18::text[]))
    RETURNING 1
),
{_PREVIOUS},
saved AS (
    INSERT INTO snapshots AS s ({_COLUMNS}) SELECT {_VALUES} WHERE EXISTS (SELECT 1 FROM claim)
    {_OVERWRITE}
    RETURNING 1
)
{_ANNOUNCE}
"""
"""CompleteTask in one statement: delete $20's live claim on ($1, $19) at $21 and, only if it was there and the
row is in none of the states $18, save. A batch of completions runs it once per completion (asyncpg fetchmany:
one round trip, one implicit transaction)."""

INSERT_SNAPSHOT_IF_ABSENT = f"""
WITH previous AS (SELECT NULL::bytea AS current_task_id WHERE false),
saved AS (
    INSERT INTO snapshots ({_COLUMNS}) VALUES ({_VALUES})
    ON CONFLICT (instance_id) DO NOTHING
    RETURNING 1
)
{_ANNOUNCE}
"""
"""Insert unless the instance exists (prepare_run's atomic create)."""

LOAD_SNAPSHOT = "SELECT snapshot FROM snapshots WHERE instance_id = $1"

LOCK_SNAPSHOT = "SELECT snapshot FROM snapshots WHERE instance_id = $1 FOR UPDATE"
"""Read-modify-write composites start here: the row stays locked until commit."""

LOAD_TASK_RESULT_SOURCES = "SELECT snapshot, retained_from FROM snapshots WHERE instance_id = $1"

DELETE_SNAPSHOT = "DELETE FROM snapshots WHERE instance_id = $1 RETURNING 1"

LIST_SNAPSHOTS = "SELECT instance_id FROM snapshots ORDER BY instance_id"

LIST_SNAPSHOTS_PAGE = """
SELECT instance_id FROM snapshots
WHERE $1::text IS NULL OR instance_id > $1::text
ORDER BY instance_id
LIMIT $2
"""

# -- signals and events -----------------------------------------------------------------------

STORE_SIGNAL = """
INSERT INTO signals (instance_id, kind, request) VALUES ($1, $2, $3)
ON CONFLICT (instance_id, kind) DO UPDATE SET request = excluded.request
"""

GET_SIGNALS = "SELECT kind, request FROM signals WHERE instance_id = $1"

HAS_SIGNAL = "SELECT EXISTS (SELECT 1 FROM signals WHERE instance_id = $1 AND kind = ANY($2::smallint[]))"
"""The lock-free fast path of the check composites: nothing pending means nothing to apply."""

CLEAR_SIGNAL = "DELETE FROM signals WHERE instance_id = $1 AND kind = $2"

SEND_EVENT = "INSERT INTO events (instance_id, signal_name, payload) VALUES ($1, $2, $3)"

CONSUME_EVENT = """
DELETE FROM events
WHERE id = (
    SELECT id FROM events
    WHERE instance_id = $1 AND signal_name = $2
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING payload
"""
"""Pop the oldest event; concurrent consumers each get a different one."""

# -- claims -----------------------------------------------------------------------------------

CLAIM_TASK = """
INSERT INTO claims AS c (instance_id, task_id, worker_id, claimed_at, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (instance_id, task_id) DO UPDATE
    SET worker_id = excluded.worker_id, claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
    WHERE c.expires_at IS NOT NULL AND c.expires_at <= excluded.claimed_at
RETURNING 1
"""
"""Claim, or replace an expired claim, in one statement; no row back while a live claim exists."""

CLAIM_UNSIGNALLED = """
INSERT INTO claims AS c (instance_id, task_id, worker_id, claimed_at, expires_at)
SELECT v.* FROM unnest($1::text[], $2::bytea[], $3::text[], $4::timestamptz[], $5::timestamptz[])
    AS v (instance_id, task_id, worker_id, claimed_at, expires_at)
WHERE NOT EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = v.instance_id)
ON CONFLICT (instance_id, task_id) DO UPDATE
    SET worker_id = excluded.worker_id, claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
    WHERE c.expires_at IS NOT NULL AND c.expires_at <= excluded.claimed_at
RETURNING c.instance_id, c.task_id
"""
"""CLAIM_TASK for many (instance, task) keys at once, skipping instances with a pending request (exact for rows
the transaction has locked: store_signal locks the row too); the keys returned are the ones claimed."""

RELEASE_TASK_CLAIM = """
WITH holder AS (SELECT worker_id FROM claims WHERE instance_id = $1 AND task_id = $2),
released AS (
    DELETE FROM claims WHERE instance_id = $1 AND task_id = $2 AND worker_id = $3
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM released) AS done, (SELECT worker_id FROM holder) AS holder
"""

EXTEND_TASK_CLAIM = """
WITH holder AS (SELECT worker_id FROM claims WHERE instance_id = $1 AND task_id = $2),
extended AS (
    UPDATE claims SET expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE $4::timestamptz END
    WHERE instance_id = $1 AND task_id = $2 AND worker_id = $3
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM extended) AS done, (SELECT worker_id FROM holder) AS holder
"""

# -- dispatch ---------------------------------------------------------------------------------

DUE_WORK = """
SELECT EXISTS (SELECT 1 FROM claims WHERE expires_at <= $1::timestamptz) AS expired_claims,
       ARRAY (
           SELECT due.instance_id FROM (
               SELECT instance_id FROM snapshots WHERE wake_at <= $1::timestamptz
               UNION
               SELECT s.instance_id FROM snapshots s
               WHERE s.signal_name IS NOT NULL
                 AND EXISTS (SELECT 1 FROM events e
                             WHERE e.instance_id = s.instance_id AND e.signal_name = s.signal_name)
           ) due
           WHERE NOT EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = due.instance_id)
           LIMIT $2
       ) AS instance_ids
"""
"""The lock-free look for rules 1 and 2: expired claims, due delays, timed-out or fed signal waits.

Instances with a pending request are left out here already: otherwise a batch of them, which no find may
advance, would fill the LIMIT on every call and starve every other due instance."""

EARLIEST_WAKE = """
SELECT s.wake_at FROM snapshots s
WHERE s.wake_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = s.instance_id)
ORDER BY s.wake_at
LIMIT 1
"""
"""The engine's timer: the earliest wake time no pending request holds back, by the snapshots_wake_at index."""

CLAIMS_OF = "SELECT task_id, worker_id, claimed_at, expires_at FROM claims WHERE instance_id = $1"

DELETE_EXPIRED_CLAIMS = "DELETE FROM claims WHERE expires_at <= $1::timestamptz RETURNING instance_id"

DELETE_CLAIMS_OF = "DELETE FROM claims WHERE instance_id = $1"

LOCK_DUE = """
SELECT s.instance_id, s.snapshot FROM snapshots s
WHERE s.instance_id = ANY($1::text[])
ORDER BY s.instance_id
FOR UPDATE SKIP LOCKED
"""
"""Lock the due rows no other replica is advancing (skipped, not waited for)."""

SIGNALLED_AMONG = "SELECT DISTINCT instance_id FROM signals WHERE instance_id = ANY($1::text[])"
"""Of the locked instances, those with a pending request: exact, as store_signal cannot add one while we hold
the rows (LOCK_DUE's own snapshot was taken before the locks, so a request committed meanwhile shows only here)."""

# What a row is decided on, beside its snapshot: a pending request, and the claim on its ready task.
_FACTS = """
    EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = s.instance_id) AS signalled,
    c.worker_id, c.claimed_at, c.expires_at
"""

_CLAIM_OF_READY_TASK = "LEFT JOIN claims c ON c.instance_id = s.instance_id AND c.task_id = s.ready_task_id"

# Prefilters of rule 3 (each only narrows; the engine decides): retry backoff elapsed ($3), every task tag
# among the worker's ($4, empty takes anything), no pending request, no live claim on the ready task, one of
# the claimer's definitions ($9, empty takes any; rows from before migration 0002 may lack the column).
# The live claim is an anti-join, not a filter over a LEFT JOIN: the planner reads "c.worker_id IS NULL" by the
# claims table's statistics (never NULL there), expects one row, and sorts the whole ready set instead of
# walking an index to the first page (2.4 ms instead of 0.3 ms at 2,000 ready rows).
_CANDIDATE_PREFILTER = """
      AND (s.next_retry_at IS NULL OR s.next_retry_at <= $3::timestamptz)
      AND (cardinality($4::text[]) = 0 OR s.tags <@ $4::text[])
      AND NOT EXISTS (SELECT 1 FROM signals g WHERE g.instance_id = s.instance_id)
      AND NOT EXISTS (SELECT 1 FROM claims c
                      WHERE c.instance_id = s.instance_id AND c.task_id = s.ready_task_id
                        AND (c.expires_at IS NULL OR c.expires_at > $3::timestamptz))
      AND (cardinality($9::bytea[]) = 0 OR s.definition_hash IS NULL OR s.definition_hash = ANY($9::bytea[]))
"""

# What the prefilter leaves is known: no pending request, no live claim (an expired one counts as none).
_FACTS_OF_CANDIDATE = """
    false AS signalled, NULL::text AS worker_id, NULL::timestamptz AS claimed_at, NULL::timestamptz AS expires_at
"""

# $1 worker, $2 page size, $5 only rows $1 failed last (else only the others), $6 priority (NULL: every
# priority's first page), $7/$8 the cursor (updated_at, instance id).
_SPLIT = """
          AND (CASE WHEN $5::boolean THEN s.last_failed_worker = $1::text
                    ELSE s.last_failed_worker IS DISTINCT FROM $1::text END)
"""

READY_PAGES_TEMPLATE = """
WITH RECURSIVE priorities (priority) AS (
    (SELECT priority FROM snapshots
     WHERE ready_task_id IS NOT NULL AND ($6::bigint IS NULL OR priority = $6::bigint)
     ORDER BY priority LIMIT 1)
    UNION ALL
    SELECT (
        SELECT s.priority FROM snapshots s
        WHERE s.ready_task_id IS NOT NULL AND s.priority > p.priority AND $6::bigint IS NULL
        ORDER BY s.priority LIMIT 1
    )
    FROM priorities p WHERE p.priority IS NOT NULL
)
SELECT page.* FROM priorities p CROSS JOIN LATERAL (
    SELECT s.priority, s.snapshot, {facts}
    FROM snapshots s
    WHERE s.ready_task_id IS NOT NULL AND s.priority = p.priority
      AND (s.updated_at, s.instance_id) > ($7::timestamptz, $8::text)
      {split}
      {prefilter}
    ORDER BY s.updated_at, s.instance_id
    LIMIT $2
    {locking}
) page
WHERE p.priority IS NOT NULL
"""
_PAGE_PARTS = {
    "facts": _FACTS_OF_CANDIDATE,
    "split": _SPLIT,
    "prefilter": _CANDIDATE_PREFILTER,
}

READY_PAGES = READY_PAGES_TEMPLATE.format(**_PAGE_PARTS, locking="")
"""Pages of ready rows per priority over the snapshots_ready partial index, by (updated_at, instance id).

The distinct priorities come from a skip scan, so the query walks the index once per priority and stops
after $2 fitting rows each: it never reads the whole table. The engine merges the pages in dispatch order."""

READY_PAGES_LOCKING = READY_PAGES_TEMPLATE.format(**_PAGE_PARTS, locking="FOR UPDATE OF s SKIP LOCKED")
"""READY_PAGES for a claiming find: each row met stays locked until commit, and rows another claimer holds are
skipped, not waited for, so concurrent claimers never contend for the same candidates."""

HINTED_ROW = f"""
SELECT s.snapshot, {_FACTS} FROM snapshots s
{_CLAIM_OF_READY_TASK}
WHERE s.instance_id = $1 AND s.ready_task_id = $2
"""
"""A hinted task by key, with what rule 3 decides on."""

WITHOUT_DEFINITION = "SELECT instance_id, snapshot FROM snapshots WHERE definition_hash IS NULL LIMIT $1"
"""Rows written before migration 0002 (no definition hash column yet): filled in at start."""

SET_DEFINITIONS = """
UPDATE snapshots AS s SET definition_hash = v.definition_hash
FROM unnest($1::text[], $2::bytea[]) AS v (instance_id, definition_hash)
WHERE s.instance_id = v.instance_id AND s.definition_hash IS NULL
"""

GET_SECRET = "SELECT value FROM server_secrets WHERE name = $1"

PUT_SECRET_IF_ABSENT = """
INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
"""

PING = "SELECT 1"

# -- ListWorkflows ----------------------------------------------------------------------------

_LIST_WHERE_BUT_STATE = """
  ($2::bytea IS NULL OR s.definition_hash = $2::bytea)
  AND ($3::text IS NULL OR s.tags @> ARRAY[$3::text])
  AND ($4::text = '' OR (s.instance_id >= $4::text AND starts_with(s.instance_id, $4::text)))
  AND ($5::timestamptz IS NULL OR s.updated_at >= $5::timestamptz)
  AND ($6::timestamptz IS NULL OR s.updated_at < $6::timestamptz)
"""
# An empty prefix folds away (custom plans) instead of leaving conditions whose guessed selectivity, before
# statistics exist, makes the planner expect one row and sort them all.

_LIST_WHERE = f"""
WHERE (cardinality($1::text[]) = 0 OR s.state = ANY($1::text[]))
  AND {_LIST_WHERE_BUT_STATE}
"""

LIST_WORKFLOWS_NEWEST_FIRST = f"""
SELECT s.snapshot, c.worker_id, c.claimed_at, c.expires_at FROM snapshots s
LEFT JOIN claims c ON c.instance_id = s.instance_id AND c.task_id = s.current_task_id
{_LIST_WHERE}
  AND ($7::timestamptz IS NULL OR (s.updated_at, s.instance_id) < ($7::timestamptz, $8::text))
ORDER BY s.updated_at DESC, s.instance_id DESC
LIMIT $9
"""
"""ListWorkflows, newest first. Every execution is planned for its own parameters (plan_cache_mode), so the
filters not given fold away and the index that serves the given ones drives the scan."""

LIST_WORKFLOWS_BY_STATES_NEWEST_FIRST = f"""
SELECT l.snapshot, l.worker_id, l.claimed_at, l.expires_at FROM unnest($1::text[]) AS wanted(state)
CROSS JOIN LATERAL (
  SELECT s.snapshot, c.worker_id, c.claimed_at, c.expires_at, s.updated_at, s.instance_id FROM snapshots s
  LEFT JOIN claims c ON c.instance_id = s.instance_id AND c.task_id = s.current_task_id
  WHERE s.state = wanted.state AND {_LIST_WHERE_BUT_STATE}
    AND ($7::timestamptz IS NULL OR (s.updated_at, s.instance_id) < ($7::timestamptz, $8::text))
  ORDER BY s.updated_at DESC, s.instance_id DESC
  LIMIT $9
) l
ORDER BY l.updated_at DESC, l.instance_id DESC
LIMIT $9
"""
"""ListWorkflows of some states, newest first: each state read from its own range of snapshots_by_state in update
order, then merged (`state = ANY(...)` cannot return index order, so it would sort every matching row)."""

LIST_WORKFLOWS_BY_ID = f"""
SELECT s.snapshot, c.worker_id, c.claimed_at, c.expires_at FROM snapshots s
LEFT JOIN claims c ON c.instance_id = s.instance_id AND c.task_id = s.current_task_id
{_LIST_WHERE}
  AND ($8::text IS NULL OR s.instance_id > $8::text)
  AND $7::timestamptz IS NULL
ORDER BY s.instance_id
LIMIT $9
"""
"""ListWorkflows by ascending instance id ("C" collation: UTF-8 byte order), driven by the primary key."""

SIGNALS_AMONG = "SELECT instance_id, kind, request FROM signals WHERE instance_id = ANY($1::text[])"
