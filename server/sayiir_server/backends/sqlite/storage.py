"""The SQLite storage operations, synchronous, run on the backend's one database thread.

Each public method is one transaction. Writes use BEGIN IMMEDIATE, so a
composite (read, apply the shared SPEC rule, write) holds the write lock from
its first read to its commit. Writes queued together may share one
transaction (group(), one savepoint each) to pay one fsync for all. Wakeup
hints of committed writes are collected in `committed_hints` for the event
loop to publish.
"""

from __future__ import annotations

import heapq
import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sayiir_client.errors import ClaimLostError, NotFoundError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.sqlite import queries as sql
from sayiir_server.backends.sqlite.rows import (
    micros_timestamp,
    snapshot_columns,
)
from sayiir_server.backends.stored import decode_signal_request, decode_snapshot
from sayiir_server.dispatch import (
    advance_past_delay,
    advance_past_signal,
    available_task,
    awaited_signal_name,
    datetime_micros,
    dispatch_order_key,
    is_delay_due,
    is_signal_timed_out,
    order_and_limit,
    ready_hint,
)
from sayiir_server.model import CANCEL, PAUSE, ControlSignal, SignalKind, clamp_aging_interval, state_of, utc_now
from sayiir_server.signals import SignalAdmission, admit_signal, apply_cancel, apply_pause, apply_unpause
from sayiir_server.snapshots import lookup_task_result, record_task_result, results_to_retain

_NO_CURSOR = (-(2**62), "")


class SqliteStorage:
    """The backend's operations over one connection; not thread-safe: one thread calls it."""

    def __init__(self, connection: sqlite3.Connection, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = connection
        self._clock = clock
        self._hints: list[pb.TaskWakeupHint] = []
        self._grouped = False
        self.committed_hints: list[pb.TaskWakeupHint] = []

    def close(self) -> None:
        self._db.close()

    def ping(self) -> None:
        self._db.execute("SELECT 1").fetchone()

    # --- transactions --------------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[None]:
        """One operation's transaction; inside a group() commit, a savepoint of the group's transaction."""
        if self._grouped:
            with self._savepoint():
                yield
            return
        with self._committing("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED"):
            yield

    @contextmanager
    def group(self) -> Iterator[None]:
        """Group commit: the operations run inside share one IMMEDIATE transaction and one COMMIT (one fsync).

        Each operation keeps its own savepoint, so a failing one rolls back alone; they run one after
        another on this thread, so the outcome is the one of running them one by one.
        """
        with self._committing("BEGIN IMMEDIATE"):
            self._grouped = True
            try:
                yield
            finally:
                self._grouped = False

    @contextmanager
    def _committing(self, begin: str) -> Iterator[None]:
        self._db.execute(begin)
        self._hints = []
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self.committed_hints.extend(self._hints)

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        kept = len(self._hints)
        self._db.execute("SAVEPOINT operation")
        try:
            yield
        except BaseException:
            del self._hints[kept:]
            self._db.execute("ROLLBACK TO operation")
            self._db.execute("RELEASE operation")
            raise
        self._db.execute("RELEASE operation")

    def _one(self, statement: str, params: dict[str, Any]) -> Any:
        return self._db.execute(statement, params).fetchone()

    # --- snapshots -----------------------------------------------------------------------------------------------

    def _load(self, instance_id: str) -> pb.WorkflowSnapshot | None:
        row = self._one(sql.LOAD_SNAPSHOT, {"instance_id": instance_id})
        return None if row is None else decode_snapshot(row[0])

    def _load_existing(self, instance_id: str) -> pb.WorkflowSnapshot:
        snapshot = self._load(instance_id)
        if snapshot is None:
            raise NotFoundError(f"no snapshot for instance {instance_id!r}")
        return snapshot

    def _retained(self, instance_id: str) -> list[pb.TaskResult]:
        rows = self._db.execute(sql.LOAD_RETAINED, {"instance_id": instance_id})
        return [pb.TaskResult(task_id=task_id, output=output) for task_id, output in rows]

    def _write(self, previous: pb.WorkflowSnapshot | None, snapshot: pb.WorkflowSnapshot) -> None:
        """Store a snapshot over `previous` (None when new): row, retained results, and its wakeup hint."""
        instance_id = snapshot.instance_id
        columns = snapshot_columns(snapshot)
        buffered = columns.signal_name is not None and self._event_buffered(instance_id, columns.signal_name)
        self._db.execute(sql.UPSERT_SNAPSHOT, {**asdict(columns), "due_at_us": columns.due_at_us(buffered)})
        if state_of(snapshot) in ("completed", "failed"):
            retained = results_to_retain(previous, snapshot, self._retained(instance_id))
            self._replace_retained(instance_id, retained)
        elif previous is not None and state_of(previous) in ("completed", "failed"):
            self._db.execute(sql.DELETE_RETAINED, {"instance_id": instance_id})
        hint = ready_hint(previous, snapshot)
        if hint is not None:
            self._hints.append(hint)

    def _replace_retained(self, instance_id: str, results: Sequence[pb.TaskResult]) -> None:
        self._db.execute(sql.DELETE_RETAINED, {"instance_id": instance_id})
        self._db.executemany(
            sql.INSERT_RETAINED,
            [{"instance_id": instance_id, "task_id": r.task_id, "output": r.output} for r in results],
        )

    def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        with self._transaction(write=True):
            self._write(self._load(snapshot.instance_id), snapshot)

    def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        with self._transaction(write=True):
            if self._one(sql.SNAPSHOT_EXISTS, {"instance_id": snapshot.instance_id}) is not None:
                return False
            self._write(None, snapshot)
            return True

    def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        with self._transaction(write=True):
            snapshot = self._load_existing(instance_id)
            previous = pb.WorkflowSnapshot()
            previous.CopyFrom(snapshot)
            if record_task_result(snapshot, task_id, output, self._clock()):
                self._write(previous, snapshot)

    def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        return self._load_existing(instance_id)  # one statement: atomic without a transaction of its own

    def delete_snapshot(self, instance_id: str) -> None:
        with self._transaction(write=True):
            if self._db.execute(sql.DELETE_SNAPSHOT, {"instance_id": instance_id}).rowcount == 0:
                raise NotFoundError(f"no snapshot for instance {instance_id!r}")
            self._db.execute(sql.DELETE_RETAINED, {"instance_id": instance_id})

    def list_snapshots(self) -> list[str]:
        return [row[0] for row in self._db.execute(sql.LIST_SNAPSHOTS)]

    def list_snapshots_page(self, after: str | None, limit: int) -> list[str]:
        rows = self._db.execute(sql.LIST_SNAPSHOTS_PAGE, {"after": after or "", "limit": limit})
        return [row[0] for row in rows]

    def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        with self._transaction(write=False):
            snapshot = self._load_existing(instance_id)
            return lookup_task_result(snapshot, self._retained(instance_id), task_id)

    # --- signals and events --------------------------------------------------------------------------------------

    def _signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        row = self._one(sql.GET_SIGNAL, {"instance_id": instance_id, "kind": kind})
        return None if row is None else decode_signal_request(row[0])

    def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        with self._transaction(write=True):
            snapshot = self._load_existing(instance_id)
            if admit_signal(snapshot, kind) is SignalAdmission.STORE:
                params = {"instance_id": instance_id, "kind": kind, "request": request.SerializeToString()}
                self._db.execute(sql.STORE_SIGNAL, params)

    def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        return self._signal(instance_id, kind)

    def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        with self._transaction(write=True):
            self._db.execute(sql.CLEAR_SIGNAL, {"instance_id": instance_id, "kind": kind})

    def _event_buffered(self, instance_id: str, signal_name: str) -> bool:
        return self._one(sql.EVENT_BUFFERED, {"instance_id": instance_id, "signal_name": signal_name}) is not None

    def _pop_event(self, instance_id: str, signal_name: str) -> bytes | None:
        key = {"instance_id": instance_id, "signal_name": signal_name}
        row = self._one(sql.OLDEST_EVENT, key)
        if row is None:
            return None
        self._db.execute(sql.DELETE_EVENT, {"id": row[0]})
        self._db.execute(sql.REFRESH_SIGNAL_DUE, key)
        payload: bytes = row[1]
        return payload

    def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        key = {"instance_id": instance_id, "signal_name": signal_name}
        with self._transaction(write=True):
            self._db.execute(sql.APPEND_EVENT, {**key, "payload": payload})
            self._db.execute(sql.REFRESH_SIGNAL_DUE, key)

    def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        with self._transaction(write=True):
            return self._pop_event(instance_id, signal_name)

    def _apply_pending(self, instance_id: str, kind: SignalKind, interrupted_at_task: bytes | None) -> bool:
        """check_and_cancel / check_and_pause inside an open write transaction."""
        request = self._signal(instance_id, kind)
        if request is None:
            return False
        snapshot = self._load(instance_id)
        if snapshot is None or state_of(snapshot) != "in_progress":
            return False
        previous = pb.WorkflowSnapshot()
        previous.CopyFrom(snapshot)
        if kind == CANCEL:
            apply_cancel(snapshot, request, interrupted_at_task, self._clock())
        else:
            apply_pause(snapshot, request, self._clock())
        self._write(previous, snapshot)
        self._db.execute(sql.CLEAR_SIGNAL, {"instance_id": instance_id, "kind": kind})
        return True

    def check_and_cancel(self, instance_id: str, interrupted_at_task: bytes | None) -> bool:
        with self._transaction(write=True):
            return self._apply_pending(instance_id, CANCEL, interrupted_at_task)

    def check_and_pause(self, instance_id: str) -> bool:
        with self._transaction(write=True):
            return self._apply_pending(instance_id, PAUSE, None)

    def check_control_signals(self, instance_id: str, interrupted_at_task: bytes | None) -> ControlSignal | None:
        with self._transaction(write=True):
            if self._apply_pending(instance_id, CANCEL, interrupted_at_task):
                return enums.CONTROL_SIGNAL_CANCELLED
            if self._apply_pending(instance_id, PAUSE, None):
                return enums.CONTROL_SIGNAL_PAUSED
            return None

    def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        with self._transaction(write=True):
            snapshot = self._load_existing(instance_id)
            previous = pb.WorkflowSnapshot()
            previous.CopyFrom(snapshot)
            apply_unpause(snapshot, self._clock())
            self._write(previous, snapshot)
            return snapshot

    # --- claims --------------------------------------------------------------------------------------------------

    def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        now = self._clock()
        key = {"instance_id": instance_id, "task_id": task_id}
        with self._transaction(write=True):
            row = self._one(sql.GET_CLAIM, key)
            if row is not None and _live(row[2], datetime_micros(now)):
                return None
            expires_at_us = datetime_micros(now + ttl) if ttl is not None else None
            claimed = {"worker_id": worker_id, "claimed_at_us": datetime_micros(now), "expires_at_us": expires_at_us}
            self._db.execute(sql.UPSERT_CLAIM, {**key, **claimed})
        claim = pb.TaskClaim(
            instance_id=instance_id,
            task_id=task_id,
            worker_id=worker_id,
            claimed_at=micros_timestamp(datetime_micros(now)),
        )
        if expires_at_us is not None:
            claim.expires_at.CopyFrom(micros_timestamp(expires_at_us))
        return claim

    def _held_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        """NotFoundError without a claim, ClaimLostError when another worker holds it."""
        row = self._one(sql.GET_CLAIM, {"instance_id": instance_id, "task_id": task_id})
        if row is None:
            raise NotFoundError(f"no claim on task {task_id.hex()} of instance {instance_id!r}")
        if row[0] != worker_id:
            raise ClaimLostError(f"task {task_id.hex()} of instance {instance_id!r} is claimed by worker {row[0]!r}")

    def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        with self._transaction(write=True):
            self._held_claim(instance_id, task_id, worker_id)
            self._db.execute(sql.DELETE_CLAIM, {"instance_id": instance_id, "task_id": task_id})

    def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        with self._transaction(write=True):
            self._held_claim(instance_id, task_id, worker_id)
            params = {
                "instance_id": instance_id,
                "task_id": task_id,
                "expires_at_us": datetime_micros(self._clock() + ttl),
            }
            self._db.execute(sql.EXTEND_CLAIM, params)

    def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        with self._transaction(write=True):
            row = self._one(sql.GET_CLAIM, {"instance_id": snapshot.instance_id, "task_id": task_id})
            if row is None or row[0] != worker_id or not _live(row[2], datetime_micros(self._clock())):
                return False
            self._write(self._load(snapshot.instance_id), snapshot)
            return True

    # --- dispatch ------------------------------------------------------------------------------------------------

    def find_available_tasks(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str]
    ) -> list[pb.AvailableTask]:
        now = self._clock()
        now_us = datetime_micros(now)
        # Only a call with something to expire or advance takes the write lock.
        housekeeping = bool(self._one(sql.HOUSEKEEPING_DUE, {"now_us": now_us})[0])
        with self._transaction(write=housekeeping):
            if housekeeping:
                self._db.execute(sql.DELETE_EXPIRED_CLAIMS, {"now_us": now_us})
                self._advance_due(now)
            if limit <= 0:
                return []
            return self._candidates(worker_id, limit, clamp_aging_interval(aging_interval), worker_tags, now)

    def _advance_due(self, now: datetime) -> None:
        """Rule 2: move due delays and answered or timed-out signal waits on."""
        for (blob,) in self._db.execute(sql.DUE_SNAPSHOTS, {"now_us": datetime_micros(now)}).fetchall():
            snapshot = decode_snapshot(blob)
            previous = pb.WorkflowSnapshot()
            previous.CopyFrom(snapshot)
            signal_name = awaited_signal_name(snapshot)
            if is_delay_due(snapshot, now):
                advance_past_delay(snapshot, now)
            elif signal_name is not None:
                payload = self._pop_event(snapshot.instance_id, signal_name)
                if payload is not None or is_signal_timed_out(snapshot, now):
                    advance_past_signal(snapshot, payload or b"", now)
            # Rewritten even when nothing moved, so its due_at_us is recomputed.
            self._write(previous, snapshot)

    def _candidates(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str], now: datetime
    ) -> list[pb.AvailableTask]:
        """Rules 3 to 5 over the ready index: a k-way merge of per-priority streams, read lazily."""
        tests = {"now_us": datetime_micros(now), "worker_tags": json.dumps(list(worker_tags)) if worker_tags else None}

        def order(task: pb.AvailableTask) -> tuple[int, float, str]:
            return dispatch_order_key(task.snapshot, task.task_id, worker_id, aging_interval, now)

        priorities = [row[0] for row in self._db.execute(sql.READY_PRIORITIES)]
        streams = [self._ready_stream(p, worker_id, worker_tags, tests, now, limit) for p in priorities]
        chosen = list(itertools.islice(heapq.merge(*streams, key=order), limit))
        if len(chosen) < limit:
            failed_here = self._db.execute(sql.READY_FAILED_BY_WORKER, {**tests, "worker_id": worker_id})
            chosen += _available(failed_here, worker_tags, now)
        return order_and_limit(chosen, worker_id, aging_interval, now, limit)

    def _ready_stream(
        self,
        priority: int,
        worker_id: str,
        worker_tags: Sequence[str],
        tests: dict[str, Any],
        now: datetime,
        page_size: int,
    ) -> Iterator[pb.AvailableTask]:
        """The candidates of one priority in dispatch order, fetched a page at a time."""
        after_us, after_id = _NO_CURSOR
        while True:
            params = {**tests, "priority": priority, "worker_id": worker_id, "page_size": page_size}
            rows = self._db.execute(sql.READY_PAGE, {**params, "after_us": after_us, "after_id": after_id}).fetchall()
            yield from _available((row[:1] for row in rows), worker_tags, now)
            if len(rows) < page_size:
                return
            after_us, after_id = rows[-1][1], rows[-1][2]

    def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        now = self._clock()
        params = {
            "instance_id": hint.instance_id,
            "task_id": hint.task_id,
            "now_us": datetime_micros(now),
            "worker_tags": None,
        }
        with self._transaction(write=False):
            # The hint's own tags fit by construction, so no worker tags narrow the lookup.
            found = _available(self._db.execute(sql.HINTED_CANDIDATE, params), (), now)
        return found[0] if found else None


def _live(expires_at_us: int | None, now_us: int) -> bool:
    """A claim is live until now reaches its expiry; a claim without expiry never expires."""
    return expires_at_us is None or now_us < expires_at_us


def _available(rows: Any, worker_tags: Sequence[str], now: datetime) -> list[pb.AvailableTask]:
    """Rule 3 (the shared Python test) over snapshot rows that passed the SQL prefilter."""
    tasks = []
    for (blob,) in rows:
        task = available_task(decode_snapshot(blob), worker_tags, now)
        if task is not None:
            tasks.append(task)
    return tasks
