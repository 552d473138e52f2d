"""The storage port: what the engine needs from a backend, and nothing it decides.

A backend is storage only. It keeps snapshots (with the index columns derived
from them by `backends.index_columns`), pending signals, event FIFOs, claims
and retained task results, runs the engine's composites as transactions, and
delivers the wakeup hints of committed writes to the hub it was opened with.
Every rule of the behaviour contract (what a state allows, what a find
returns and in which order, when a delay is due) lives in the engine and the
pure rule modules. Queries may narrow the rows they return for speed (a
prefilter), never widen them: the engine decides over what they return.

Composites are async functions of a `Transaction` that await nothing but the
transaction's own methods, so a synchronous store (SQLite on its thread, the
in-memory oracle) can run them to completion without an event loop turn.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.listing import ListCursor, ListedRow, WorkflowFilter
from sayiir_server.domain.model import SignalKind

_T = TypeVar("_T")

WakeupSink = Callable[[pb.TaskWakeupHint], None]
"""Where a backend delivers the hints of committed writes (the server's WakeupHub.publish)."""


class Subscription(Protocol):
    """One subscriber's queue of hints."""

    async def next(self, timeout: timedelta | None = None) -> pb.TaskWakeupHint | None: ...

    def close(self) -> None: ...


class Wakeups(Protocol):
    """The server's fan-out of task-ready hints (api.wakeups.WakeupHub), as the engine and metrics use it."""

    published: int
    """Hints published so far."""
    dropped: int
    """Hints dropped because a subscriber's queue was full."""

    @property
    def subscriber_count(self) -> int: ...

    def publish(self, hint: pb.TaskWakeupHint) -> None: ...

    def subscribe(self, worker_tags: Sequence[str] = ()) -> Subscription: ...

    async def wait_for_wakeup(
        self, timeout: timedelta, worker_tags: Sequence[str] = ()
    ) -> pb.TaskWakeupHint | None: ...

    def watch(self, worker_tags: Sequence[str] = ()) -> AsyncIterator[pb.TaskWakeupHint]: ...


class Lock(enum.Enum):
    """How a transaction reads a snapshot row it is about to act on."""

    UPDATE = "update"
    """Read-modify-write: no one else may lock or change the row until commit."""


@dataclass(frozen=True)
class Write:
    """One snapshot write, as the engine decided it."""

    snapshot: pb.WorkflowSnapshot
    retain: bool
    """Keep the task results of the replaced row (the ones it carried, else the ones it kept): SNAP-RETAIN."""
    hint: pb.TaskWakeupHint | None
    """Announce this once committed, unless the replaced row was already at the same current task."""
    refused_over: frozenset[str] = frozenset()
    """States (index column `state`) of a stored row this write may not replace: then nothing is written."""


@dataclass(frozen=True)
class Completion:
    """One CompleteTask's write: `write` only while `worker_id` holds a live claim on (instance, `task_id`)."""

    write: Write
    task_id: bytes
    worker_id: str

    @property
    def instance_id(self) -> str:
        return self.write.snapshot.instance_id


@dataclass(frozen=True)
class ClaimAnswer:
    """What release and extend found: whether they acted, and who holds the claim (None: nobody)."""

    done: bool
    holder: str | None


@dataclass(frozen=True)
class Candidate:
    """A ready row as the engine needs it to decide rule 3: the snapshot and what lives beside it."""

    snapshot: pb.WorkflowSnapshot
    signalled: bool
    """A cancel or pause request is pending for the instance."""
    claim: pb.TaskClaim | None
    """The claim on the row's ready task, live or not; None when there is none."""


@dataclass(frozen=True)
class ReadyCursor:
    """Where a page of one priority's ready rows resumes: after (updated_at µs, instance id)."""

    updated_us: int
    instance_id: str


FIRST_PAGE = ReadyCursor(-(2**62), "")


@dataclass(frozen=True)
class DueWork:
    """What rules 1 and 2 of a find have to write, as a lock-free look found it."""

    expired_claims: bool
    """Some claim's expiry is at or before now."""
    instance_ids: list[str]
    """Instances rule 2 may move (a prefilter: the engine decides under the lock)."""


@dataclass(frozen=True)
class ReadyQuery:
    """Which ready rows a page asks for. Storage may apply every test here (each only narrows)."""

    priority: int | None
    """One priority's page after `after`; None: the first page of every priority at once (one round trip)."""
    failed_by: str | None
    """Only rows whose ready task `failed_by` failed last; None: only rows it did not (anti-affinity split)."""
    worker_id: str
    now: datetime
    worker_tags: Sequence[str]
    after: ReadyCursor
    page_size: int
    definition_hashes: Sequence[bytes] = ()
    """Only rows of these definitions; empty: any."""
    lock: bool = False
    """Lock the rows returned until commit, skipping rows another transaction holds (a claiming find)."""


class Transaction(Protocol):
    """Row operations inside one transaction of a `StoragePort`."""

    # -- snapshots -------------------------------------------------------------------------------

    async def load(self, instance_id: str, lock: Lock | None = None) -> pb.WorkflowSnapshot | None:
        """The stored snapshot (locked as asked, inside a write transaction), or None."""
        ...

    async def load_retained(self, instance_id: str) -> list[pb.TaskResult]:
        """The task results kept beside a Completed or Failed snapshot."""
        ...

    async def put(self, write: Write) -> bool:
        """Insert or overwrite the snapshot row (index columns, retained results, hint).

        False, writing nothing, when the stored row's state is one of `write.refused_over`."""
        ...

    async def insert(self, write: Write) -> bool:
        """Insert unless a row exists for the instance; True when inserted."""
        ...

    async def put_if_claimed(self, write: Write, task_id: bytes, worker_id: str, now: datetime) -> bool:
        """`put` only while `worker_id` holds a claim on (instance, task) with no expiry or one after `now`.

        The claim row stays locked until commit; False (no such claim, or a row `put` refuses) writes nothing.
        """
        ...

    async def put_and_release_each(self, completions: Sequence[Completion], now: datetime) -> list[bool]:
        """For each completion (of distinct instances), `put_if_claimed` and delete the claim; False writes and
        deletes nothing for that one. One atomic call: whether each wrote, in their order."""
        ...

    async def delete(self, instance_id: str) -> bool:
        """Delete the row and its retained results; False when there was none."""
        ...

    async def list_ids(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` instance ids above `after`, in ascending UTF-8 byte order."""
        ...

    async def list_workflows(self, wanted: WorkflowFilter, after: ListCursor | None, limit: int) -> list[ListedRow]:
        """Up to `limit` rows the filter selects, after the cursor, in its order (LIST-1, LIST-2), through indexes."""
        ...

    async def secret(self, name: str, candidate: bytes) -> bytes:
        """The stored secret `name`; the first caller's `candidate` is stored and returned to every later one."""
        ...

    # -- signals and events ----------------------------------------------------------------------

    async def signals(self, instance_id: str) -> dict[SignalKind, pb.SignalRequest]:
        """The pending requests of the instance, by kind."""
        ...

    async def has_signal(self, instance_id: str, kinds: Sequence[SignalKind]) -> bool: ...

    async def put_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        """Store a request, replacing a pending one of the same kind."""
        ...

    async def delete_signal(self, instance_id: str, kind: SignalKind) -> None: ...

    async def append_event(self, instance_id: str, signal_name: str, payload: bytes) -> None: ...

    async def pop_event(self, instance_id: str, signal_name: str) -> bytes | None:
        """Remove and return the oldest event of (instance, name); concurrent pops each get another one."""
        ...

    # -- claims ----------------------------------------------------------------------------------

    async def claim(self, claim: pb.TaskClaim, now: datetime) -> bool:
        """Store `claim` unless a claim on its (instance, task) has no expiry or one after `now`."""
        ...

    async def claim_unsignalled(self, claims: Sequence[pb.TaskClaim], now: datetime) -> set[tuple[str, bytes]]:
        """`claim` each of them (distinct keys) at once, except those of instances with a pending request (exact
        for rows this transaction has locked); the (instance id, task id) keys that were stored."""
        ...

    async def release(self, instance_id: str, task_id: bytes, worker_id: str) -> ClaimAnswer:
        """Delete the claim if `worker_id` holds it."""
        ...

    async def extend(self, instance_id: str, task_id: bytes, worker_id: str, expires_at: datetime) -> ClaimAnswer:
        """Move the expiry of `worker_id`'s claim to `expires_at` (a claim without expiry keeps none)."""
        ...

    async def claims_of(self, instance_id: str) -> list[pb.TaskClaim]:
        """Every stored claim on the instance's tasks, live or not (inside a composite that locked its row)."""
        ...

    async def delete_claims(self, instance_id: str) -> None:
        """Delete every claim on the instance's tasks."""
        ...

    async def delete_expired_claims(self, now: datetime) -> set[str]:
        """Delete the claims whose expiry is at or before `now`; the instance ids they were on."""
        ...

    # -- dispatch --------------------------------------------------------------------------------

    async def due_work(self, now: datetime, limit: int) -> DueWork:
        """Whether claims expired, and up to `limit` instances rule 2 may move: a wake time at or before
        `now`, or an awaited event buffered. Instances with a pending request are left out (no find may
        advance them, and they must not fill the batch)."""
        ...

    async def earliest_wake(self) -> datetime | None:
        """The earliest wake time (index column `wake_at`) of a row without a pending request, or None.

        What the engine's timer sleeps until (WAKE-5). Rows with a pending request are left out, as due_work
        leaves them out (no find may advance them); a store may count a row whose awaited event is buffered
        as due at once."""
        ...

    async def lock_due(self, instance_ids: Sequence[str]) -> list[Candidate]:
        """Lock those rows no other transaction holds (skipped, not waited for), in instance id order.

        `signalled` is exact under the lock; `claim` is None."""
        ...

    async def ready_pages(self, query: ReadyQuery) -> dict[int, list[Candidate]]:
        """Pages of ready rows by priority, each by (updated_at, instance id), at most page_size rows each."""
        ...

    async def hinted(self, instance_id: str, task_id: bytes) -> Candidate | None:
        """The instance's row if its ready task is `task_id`."""
        ...


Composite = Callable[[Transaction], Awaitable[_T]]


class StoragePort(Protocol):
    """A backend's storage, reached only through transactions."""

    async def write(self, composite: Composite[_T], *, single_statement: bool = False) -> _T:
        """Run `composite` in one write transaction: all its writes commit, or none.

        `single_statement`: the composite makes one call of the transaction, which the store may run as a
        statement of its own (atomic by itself) instead of opening a transaction around it.

        Hints of the writes are delivered after the commit. A store may run a composite again
        when the database aborted it (deadlock, serialization): composites have no other effects.
        """
        ...

    async def read(self, composite: Composite[_T]) -> _T:
        """Run a composite that only reads; each read sees committed data."""
        ...

    async def check_health(self) -> None:
        """Raise BackendUnavailableError when the storage cannot serve."""
        ...

    async def close(self) -> None:
        """Release connections and files (pending writes finish first); idempotent."""
        ...

    @property
    def description(self) -> str:
        """A credential-free description for logs ("sqlite:///var/lib/sayiir.db")."""
        ...
