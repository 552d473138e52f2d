"""The port's row operations over one SQLite connection, inside a transaction `SqliteStorage` opened.

The methods are `async` for the port's sake but never suspend: they run on the
database thread, where `SqliteStorage.run` drives each composite to its end.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.sqlite import queries as sql
from sayiir_server.backends.sqlite.rows import micros_timestamp, snapshot_columns
from sayiir_server.backends.stored import decode_signal_request, decode_snapshot
from sayiir_server.domain import claims, listing
from sayiir_server.domain.dispatch import datetime_micros
from sayiir_server.domain.listing import ListCursor, ListedRow, WorkflowFilter
from sayiir_server.domain.model import SignalKind, to_datetime
from sayiir_server.domain.port import FIRST_PAGE, Candidate, ClaimAnswer, Completion, DueWork, Lock, ReadyQuery, Write
from sayiir_server.domain.snapshots import results_to_keep


class SqliteTransaction:
    """Row operations; `hints` collects what committed writes announce."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self.hints: list[pb.TaskWakeupHint] = []

    def _one(self, statement: str, params: dict[str, Any]) -> Any:
        return self._db.execute(statement, params).fetchone()

    # -- snapshots -------------------------------------------------------------------------------

    async def load(self, instance_id: str, lock: Lock | None = None) -> pb.WorkflowSnapshot | None:
        # A write transaction already holds the database's write lock: every row is locked.
        row = self._one(sql.LOAD_SNAPSHOT, {"instance_id": instance_id})
        return None if row is None else decode_snapshot(row[0])

    async def load_retained(self, instance_id: str) -> list[pb.TaskResult]:
        rows = self._db.execute(sql.LOAD_RETAINED, {"instance_id": instance_id})
        return [pb.TaskResult(task_id=task_id, output=output) for task_id, output in rows]

    async def put(self, write: Write) -> bool:
        snapshot = write.snapshot
        instance_id = snapshot.instance_id
        key = {"instance_id": instance_id}
        previous = self._one(sql.CURRENT_TASK, key)
        if previous is not None and previous[1] in write.refused_over:
            return False
        if write.retain:
            kept = await self._results_to_keep(instance_id)
        columns = snapshot_columns(snapshot)
        buffered = columns.signal_name is not None and self._event_buffered(instance_id, columns.signal_name)
        self._db.execute(sql.UPSERT_SNAPSHOT, {**asdict(columns), "due_at_us": columns.due_at_us(buffered)})
        if previous is not None or write.retain:
            self._db.execute(sql.DELETE_RETAINED, key)
        if write.retain:
            rows = [{"instance_id": instance_id, "task_id": r.task_id, "output": r.output} for r in kept]
            self._db.executemany(sql.INSERT_RETAINED, rows)
        self._db.execute(sql.DELETE_TAGS, key)
        tag_rows = [
            {"tag": tag, "instance_id": instance_id, "updated_at_us": columns.updated_at_us}
            for tag in snapshot.task_tags
        ]
        self._db.executemany(sql.INSERT_TAG, tag_rows)
        if write.hint is not None and (previous is None or previous[0] != columns.current_task_id):
            self.hints.append(write.hint)
        return True

    async def _results_to_keep(self, instance_id: str) -> list[pb.TaskResult]:
        """SNAP-RETAIN, over the row about to be replaced."""
        row = self._one(sql.LOAD_SNAPSHOT, {"instance_id": instance_id})
        previous = None if row is None else decode_snapshot(row[0])
        return results_to_keep(True, previous, await self.load_retained(instance_id))

    async def insert(self, write: Write) -> bool:
        if self._one(sql.SNAPSHOT_EXISTS, {"instance_id": write.snapshot.instance_id}) is not None:
            return False
        return await self.put(write)

    async def put_if_claimed(self, write: Write, task_id: bytes, worker_id: str, now: datetime) -> bool:
        held = self._claim(write.snapshot.instance_id, task_id)
        if held is None or held.worker_id != worker_id or not claims.is_live(held, now):
            return False
        return await self.put(write)

    async def put_and_release_each(self, completions: Sequence[Completion], now: datetime) -> list[bool]:
        return [await self._put_and_release(completion, now) for completion in completions]

    async def _put_and_release(self, completion: Completion, now: datetime) -> bool:
        write, task_id = completion.write, completion.task_id
        if not await self.put_if_claimed(write, task_id, completion.worker_id, now):
            return False
        self._db.execute(sql.DELETE_CLAIM, {"instance_id": write.snapshot.instance_id, "task_id": task_id})
        return True

    async def delete(self, instance_id: str) -> bool:
        if self._db.execute(sql.DELETE_SNAPSHOT, {"instance_id": instance_id}).rowcount == 0:
            return False
        self._db.execute(sql.DELETE_RETAINED, {"instance_id": instance_id})
        self._db.execute(sql.DELETE_TAGS, {"instance_id": instance_id})
        return True

    async def list_ids(self, after: str | None, limit: int) -> list[str]:
        rows = self._db.execute(sql.LIST_SNAPSHOTS_PAGE, {"after": after or "", "limit": limit})
        return [row[0] for row in rows]

    async def secret(self, name: str, candidate: bytes) -> bytes:
        self._db.execute(sql.PUT_SECRET_IF_ABSENT, {"name": name, "value": candidate})
        value: bytes = self._one(sql.GET_SECRET, {"name": name})[0]
        return value

    async def list_workflows(self, wanted: WorkflowFilter, after: ListCursor | None, limit: int) -> list[ListedRow]:
        params: dict[str, Any] = {"limit": limit}
        given: set[str] = set()
        if wanted.states:
            given.add("states")
            params["states"] = json.dumps(list(wanted.states))
            params.update({f"state_{index}": state for index, state in enumerate(wanted.states)})
        if wanted.definition_hash is not None:
            given.add("definition_hash")
            params["definition_hash"] = wanted.definition_hash
        if wanted.tag is not None:
            given.add("tag")
            params["tag"] = wanted.tag
        if wanted.prefix:
            given.add("prefix")
            params["prefix"] = wanted.prefix
        if wanted.updated_after is not None:
            given.add("updated_after")
            params["updated_after_us"] = datetime_micros(wanted.updated_after)
        if wanted.updated_before is not None:
            given.add("updated_before")
            params["updated_before_us"] = datetime_micros(wanted.updated_before)
        if after is not None:
            params["cursor_us"], params["cursor_id"] = after.updated_us, after.instance_id
        statement = sql.list_workflows_statement(
            frozenset(given), wanted.newest_first, after is not None, len(wanted.states)
        )
        rows = self._db.execute(statement, params).fetchall()
        snapshots = [decode_snapshot(row[0]) for row in rows]
        ids = json.dumps([snapshot.instance_id for snapshot in snapshots])
        pending = listing.signals_by_instance(
            [
                (instance_id, kind, decode_signal_request(blob))
                for instance_id, kind, blob in self._db.execute(sql.SIGNALS_AMONG, {"instance_ids": ids})
            ]
        )
        listed = []
        for snapshot, row in zip(snapshots, rows, strict=True):
            claim = None
            if row[1] is not None:
                task_id = snapshot.in_progress.position.at_task.task_id
                claim = _claim_of(snapshot.instance_id, task_id, row[1], row[2], row[3])
            listed.append(ListedRow(snapshot, pending.get(snapshot.instance_id, {}), claim))
        return listed

    # -- signals and events ----------------------------------------------------------------------

    async def signals(self, instance_id: str) -> dict[SignalKind, pb.SignalRequest]:
        rows = self._db.execute(sql.SIGNALS_OF, {"instance_id": instance_id})
        return {kind: decode_signal_request(blob) for kind, blob in rows}

    async def has_signal(self, instance_id: str, kinds: Sequence[SignalKind]) -> bool:
        return bool(self._one(sql.HAS_SIGNAL, {"instance_id": instance_id, "kinds": json.dumps(list(kinds))})[0])

    async def put_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        params = {"instance_id": instance_id, "kind": kind, "request": request.SerializeToString()}
        self._db.execute(sql.STORE_SIGNAL, params)

    async def delete_signal(self, instance_id: str, kind: SignalKind) -> None:
        self._db.execute(sql.CLEAR_SIGNAL, {"instance_id": instance_id, "kind": kind})

    def _event_buffered(self, instance_id: str, signal_name: str) -> bool:
        return self._one(sql.EVENT_BUFFERED, {"instance_id": instance_id, "signal_name": signal_name}) is not None

    async def append_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        key = {"instance_id": instance_id, "signal_name": signal_name}
        self._db.execute(sql.APPEND_EVENT, {**key, "payload": payload})
        self._db.execute(sql.REFRESH_SIGNAL_DUE, key)

    async def pop_event(self, instance_id: str, signal_name: str) -> bytes | None:
        key = {"instance_id": instance_id, "signal_name": signal_name}
        row = self._one(sql.OLDEST_EVENT, key)
        if row is None:
            return None
        self._db.execute(sql.DELETE_EVENT, {"id": row[0]})
        self._db.execute(sql.REFRESH_SIGNAL_DUE, key)
        payload: bytes = row[1]
        return payload

    # -- claims ----------------------------------------------------------------------------------

    def _claim(self, instance_id: str, task_id: bytes) -> pb.TaskClaim | None:
        row = self._one(sql.GET_CLAIM, {"instance_id": instance_id, "task_id": task_id})
        return None if row is None else _claim_of(instance_id, task_id, *row)

    async def claim(self, claim: pb.TaskClaim, now: datetime) -> bool:
        held = self._claim(claim.instance_id, claim.task_id)
        if held is not None and claims.is_live(held, now):
            return False
        params = {
            "instance_id": claim.instance_id,
            "task_id": claim.task_id,
            "worker_id": claim.worker_id,
            "claimed_at_us": claim.claimed_at.ToMicroseconds(),
            "expires_at_us": claim.expires_at.ToMicroseconds() if claim.HasField("expires_at") else None,
        }
        self._db.execute(sql.UPSERT_CLAIM, params)
        return True

    async def claim_unsignalled(self, claims: Sequence[pb.TaskClaim], now: datetime) -> set[tuple[str, bytes]]:
        signalled = await self._signalled_among([claim.instance_id for claim in claims])
        unsignalled = [claim for claim in claims if claim.instance_id not in signalled]
        return {(claim.instance_id, claim.task_id) for claim in unsignalled if await self.claim(claim, now)}

    async def release(self, instance_id: str, task_id: bytes, worker_id: str) -> ClaimAnswer:
        held = self._claim(instance_id, task_id)
        if held is None or held.worker_id != worker_id:
            return ClaimAnswer(False, None if held is None else held.worker_id)
        self._db.execute(sql.DELETE_CLAIM, {"instance_id": instance_id, "task_id": task_id})
        return ClaimAnswer(True, worker_id)

    async def extend(self, instance_id: str, task_id: bytes, worker_id: str, expires_at: datetime) -> ClaimAnswer:
        held = self._claim(instance_id, task_id)
        if held is None or held.worker_id != worker_id:
            return ClaimAnswer(False, None if held is None else held.worker_id)
        params = {"instance_id": instance_id, "task_id": task_id, "expires_at_us": datetime_micros(expires_at)}
        self._db.execute(sql.EXTEND_CLAIM, params)
        return ClaimAnswer(True, worker_id)

    async def claims_of(self, instance_id: str) -> list[pb.TaskClaim]:
        rows = self._db.execute(sql.CLAIMS_OF, {"instance_id": instance_id})
        return [_claim_of(instance_id, task_id, *held) for task_id, *held in rows]

    async def delete_claims(self, instance_id: str) -> None:
        self._db.execute(sql.DELETE_CLAIMS_OF, {"instance_id": instance_id})

    async def delete_expired_claims(self, now: datetime) -> set[str]:
        rows = self._db.execute(sql.DELETE_EXPIRED_CLAIMS, {"now_us": datetime_micros(now)}).fetchall()
        return {row[0] for row in rows}

    # -- dispatch --------------------------------------------------------------------------------

    async def due_work(self, now: datetime, limit: int) -> DueWork:
        now_us = datetime_micros(now)
        expired = bool(self._one(sql.EXPIRED_CLAIMS_EXIST, {"now_us": now_us})[0])
        ids = [row[0] for row in self._db.execute(sql.DUE_IDS, {"now_us": now_us, "limit": limit})]
        return DueWork(expired, ids)

    async def earliest_wake(self) -> datetime | None:
        row = self._one(sql.EARLIEST_DUE, {})
        return None if row is None else to_datetime(micros_timestamp(row[0]))

    async def lock_due(self, instance_ids: Sequence[str]) -> list[Candidate]:
        rows = self._db.execute(sql.DUE_ROWS, {"instance_ids": json.dumps(list(instance_ids))})
        return [Candidate(decode_snapshot(blob), bool(signalled), None) for blob, signalled in rows]

    async def ready_pages(self, query: ReadyQuery) -> dict[int, list[Candidate]]:
        if query.priority is None:
            priorities = [row[0] for row in self._db.execute(sql.READY_PRIORITIES)]
        else:
            priorities = [query.priority]
        params = {
            "failed_by": query.failed_by,
            "worker_id": query.worker_id,
            "now_us": datetime_micros(query.now),
            "worker_tags": json.dumps(list(query.worker_tags)) if query.worker_tags else None,
            "after_us": query.after.updated_us if query.priority is not None else FIRST_PAGE.updated_us,
            "after_id": query.after.instance_id if query.priority is not None else FIRST_PAGE.instance_id,
            "page_size": query.page_size,
            "definition_hashes": json.dumps([h.hex() for h in query.definition_hashes])
            if query.definition_hashes
            else None,
        }
        return {
            priority: [_candidate(row) for row in self._db.execute(sql.READY_PAGE, {**params, "priority": priority})]
            for priority in priorities
        }

    async def _signalled_among(self, instance_ids: Sequence[str]) -> set[str]:
        rows = self._db.execute(sql.SIGNALLED_AMONG, {"instance_ids": json.dumps(list(instance_ids))})
        return {row[0] for row in rows}

    async def hinted(self, instance_id: str, task_id: bytes) -> Candidate | None:
        row = self._one(sql.HINTED_ROW, {"instance_id": instance_id, "task_id": task_id})
        return None if row is None else _candidate(row)


def _claim_of(
    instance_id: str, task_id: bytes, worker_id: str, claimed_at_us: int, expires_at_us: int | None
) -> pb.TaskClaim:
    claim = pb.TaskClaim(
        instance_id=instance_id, task_id=task_id, worker_id=worker_id, claimed_at=micros_timestamp(claimed_at_us)
    )
    if expires_at_us is not None:
        claim.expires_at.CopyFrom(micros_timestamp(expires_at_us))
    return claim


def _candidate(row: Any) -> Candidate:
    """A (snapshot, signalled, claim worker, claimed at, expires at) row."""
    snapshot = decode_snapshot(row[0])
    worker_id, claimed_at_us, expires_at_us = row[2], row[3], row[4]
    claim = None
    if worker_id is not None:
        task_id = snapshot.in_progress.position.at_task.task_id
        claim = _claim_of(snapshot.instance_id, task_id, worker_id, claimed_at_us, expires_at_us)
    return Candidate(snapshot, bool(row[1]), claim)
