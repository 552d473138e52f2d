"""The engine: every storage trait, each composite and rule written once, over any storage port.

In the manner of procrastinate's manager over its connectors: the engine
decides (state rules, dispatch, the clock, errors), the port stores. Each
method is one or two transactions of the port; rule ids refer to
docs/behaviour.md.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sayiir_client.coalescing import Coalescer
from sayiir_client.errors import (
    AlreadyExistsError,
    BackendError,
    FinalStateError,
    NotFoundError,
    RunBackendFailureError,
    SerializationError,
)
from sayiir_client.tasks import TaskCompletion
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain import claims, dispatch, listing, runs, selection
from sayiir_server.domain.listing import ListCursor, WorkflowFilter
from sayiir_server.domain.model import (
    CANCEL,
    PAUSE,
    SIGNAL_KINDS,
    ConflictPolicy,
    ControlSignal,
    SignalKind,
    clamp_aging_interval,
    state_name,
    state_of,
    utc_now,
)
from sayiir_server.domain.port import Candidate, Completion, Lock, StoragePort, Transaction, Wakeups, Write
from sayiir_server.domain.signals import SignalAdmission, admit_signal, apply_cancel, apply_pause, apply_unpause
from sayiir_server.domain.sizes import UNLIMITED, SizeLimits, SnapshotTooLargeError, fitting
from sayiir_server.domain.snapshots import FINAL_STATES, lookup_task_result, record_task_result, retains
from sayiir_server.domain.timer import DueTimer
from sayiir_server.domain.traits import MAX_FIND_LIMIT, Backend

Clock = Callable[[], datetime]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimDemand:
    """What one ClaimAvailableTasks asks for."""

    worker_id: str
    limit: int
    ttl: timedelta
    aging_interval: timedelta
    worker_tags: Sequence[str] = ()
    definition_hashes: Sequence[bytes] = ()
    wait: timedelta = timedelta(0)
    max_bytes: int | None = None
    """The response's message limit (SIZE-1.2); None: no limit."""


CLAIM_RECHECK_SECONDS: Final = 1.0
"""A waiting ClaimAvailableTasks looks again at least this often (delays come due without a hint)."""

PAGE_TOKEN_KEY: Final = "page-token-key"

ADVANCE_BATCH: Final = 256
"""DISP-2: most due delays and signal waits one find advances; the rest wait for the next find."""

BATCHES_IN_FLIGHT: Final = 2
"""Batches of one kind running at once: one's round trip overlaps the next one's encoding."""

COMPLETION_BATCH: Final = 64
"""Most CompleteTasks in one batch (one statement per completion, one round trip and one commit for all)."""

COMPLETION_BATCH_BYTES: Final = 4 * 1024 * 1024
"""Most snapshot bytes in one batch: large snapshots go in smaller batches (one too large for it, alone)."""

CLAIM_BATCH: Final = 16
"""Most ClaimAvailableTasks in one batch: each demand reads its own candidates, so a batch's transaction holds
its row locks for as many reads; 16 keeps that short."""

_RUN_ATTEMPTS: Final = 3
"""A lost insert race re-reads the winner's snapshot; more than one loss in a row is pathological."""

_TERMINATE_ATTEMPTS: Final = 64
"""Under TERMINATE_EXISTING every lost insert terminates the winner and tries again: with N racing callers
one gets through per round, so a caller may lose up to N - 1 rounds before its own insert lands."""

_CONTROL_SIGNALS: Final = {CANCEL: enums.CONTROL_SIGNAL_CANCELLED, PAUSE: enums.CONTROL_SIGNAL_PAUSED}


def _not_found(instance_id: str) -> NotFoundError:
    return NotFoundError(f"workflow instance {instance_id!r} not found")


def write_of(snapshot: pb.WorkflowSnapshot, *, by_client: bool = False) -> Write:
    """How a snapshot is stored: SNAP-RETAIN decides the results kept, WAKE-1 the hint it may announce, and
    SNAP-1.4 that a client's save never replaces a final state (the engine's own writes never meet one)."""
    refused_over = FINAL_STATES if by_client else frozenset()
    return Write(snapshot, retain=retains(snapshot), hint=dispatch.ready_hint(snapshot), refused_over=refused_over)


async def _apply_first(
    tx: Transaction,
    snapshot: pb.WorkflowSnapshot,
    kinds: tuple[SignalKind, ...],
    interrupted_at_task: bytes | None,
    now: datetime,
) -> SignalKind | None:
    """SIG-3.1, SIG-4.1: the first pending request among `kinds` applied in place to an InProgress snapshot and
    cleared; its kind, or None (nothing pending, or another state: SIG-3.2, SIG-4.2)."""
    pending = await tx.signals(snapshot.instance_id)
    kind = next((kind for kind in kinds if kind in pending), None)
    if kind is None or state_of(snapshot) != "in_progress":
        return None
    if kind == CANCEL:
        apply_cancel(snapshot, pending[kind], interrupted_at_task, now)
    else:
        apply_pause(snapshot, pending[kind], now)
    await tx.delete_signal(snapshot.instance_id, kind)
    return kind


def _final_state_error(stored: pb.WorkflowSnapshot | None) -> FinalStateError:
    return FinalStateError(state_name(stored) if stored is not None else "Unknown")


class Engine(Backend):
    """The storage traits over a port; `wakeups` is the server's hub, which the port's committed hints reach."""

    def __init__(
        self, storage: StoragePort, wakeups: Wakeups, clock: Clock = utc_now, limits: SizeLimits = UNLIMITED
    ) -> None:
        self.storage = storage
        self.wakeups = wakeups
        self._clock = clock
        self.limits = limits
        """SIZE-*: set by the server from its message limit (unlimited for a bare engine)."""
        self._page_token_key: bytes | None = None
        self.timer = DueTimer(self._earliest_wake, self._advance_due, clock)
        """WAKE-5: started by open_backend (a replica serving the store); a bare engine advances only in finds."""
        self._completions: Coalescer[Completion, bool] = Coalescer(
            self._complete_batch,
            key=lambda completion: completion.instance_id,
            max_batch=COMPLETION_BATCH,
            max_in_flight=BATCHES_IN_FLIGHT,
            size=lambda completion: completion.write.snapshot.ByteSize(),
            max_size=COMPLETION_BATCH_BYTES,
            isolate=(SerializationError,),
        )
        """COMPLETE-1.6: concurrent CompleteTasks share a round trip and a commit."""
        self._claims: Coalescer[ClaimDemand, list[pb.ClaimedTask]] = Coalescer(
            self._claim_batch, key=id, max_batch=CLAIM_BATCH, max_in_flight=BATCHES_IN_FLIGHT
        )
        """CLAIM-AVAIL-1.9: concurrent ClaimAvailableTasks share a transaction and one look for due work."""

    def now(self) -> datetime:
        return self._clock()

    def start_timer(self) -> None:
        """WAKE-5: wake workers when delays and signal timeouts fall due (on the running loop)."""
        self.timer.start()

    async def _earliest_wake(self) -> datetime | None:
        return await self.storage.read(lambda tx: tx.earliest_wake())

    def _written(self, snapshot: pb.WorkflowSnapshot) -> None:
        """After a write of `snapshot` committed: its due time, if any, is one the timer must hear of."""
        self.timer.consider(dispatch.wake_at(snapshot))

    async def _refuse_if_final(self, instance_id: str) -> None:
        """SNAP-1.4 after a write that did not land: FinalStateError when the row it met is final."""
        stored = await self.storage.read(lambda tx: tx.load(instance_id))
        if stored is not None and state_of(stored) in FINAL_STATES:
            raise _final_state_error(stored)

    # -- SnapshotStore ---------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        """SNAP-1.1; SNAP-1.4: FinalStateError, nothing written, over a Completed, Failed or Cancelled row."""
        self.limits.check(snapshot, "snapshot")
        write = write_of(snapshot, by_client=True)
        if not await self.storage.write(lambda tx: tx.put(write), single_statement=True):
            raise _final_state_error(await self.storage.read(lambda tx: tx.load(snapshot.instance_id)))
        self._written(snapshot)

    async def save_snapshots(self, snapshots: Sequence[pb.WorkflowSnapshot]) -> None:
        """Save many snapshots in one transaction (bulk imports and seeding); all or none (SNAP-1.4)."""
        for index, snapshot in enumerate(snapshots):
            self.limits.check(snapshot, f"snapshots[{index}]")
        writes = [write_of(snapshot, by_client=True) for snapshot in snapshots]

        async def put_all(tx: Transaction) -> None:
            for write in writes:
                if not await tx.put(write):
                    raise _final_state_error(await tx.load(write.snapshot.instance_id))

        await self.storage.write(put_all)
        for snapshot in snapshots:
            self._written(snapshot)

    async def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        now = self.now()

        async def record(tx: Transaction) -> None:
            snapshot = await self._locked(tx, instance_id)
            if record_task_result(snapshot, task_id, output, now):
                self.limits.check(snapshot, "output")
                await tx.put(write_of(snapshot))

        await self.storage.write(record)

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        snapshot = await self.storage.read(lambda tx: tx.load(instance_id))
        if snapshot is None:
            raise _not_found(instance_id)
        return snapshot

    async def delete_snapshot(self, instance_id: str) -> None:
        if not await self.storage.write(lambda tx: tx.delete(instance_id), single_statement=True):
            raise _not_found(instance_id)

    async def list_snapshots(self) -> list[str]:
        ids: list[str] = []
        after: str | None = None
        while page := await self.list_snapshots_page(after, MAX_FIND_LIMIT):
            ids += page
            after = page[-1]
        return ids

    async def list_snapshots_page(self, after: str | None, limit: int) -> list[str]:
        return await self.storage.read(lambda tx: tx.list_ids(after, limit))

    async def list_workflows(
        self, wanted: WorkflowFilter, after: ListCursor | None, limit: int, *, max_bytes: int | None = None
    ) -> tuple[list[pb.WorkflowSummary], ListCursor | None]:
        """LIST-*: one page of summaries and the cursor of the next page (None after the last one).

        With `max_bytes` the page stops before the summary that would not fit in one response (a page may
        then be shorter than `limit`; the cursor goes on from the last summary that fit).
        """
        now = self.now()
        rows = await self.storage.read(lambda tx: tx.list_workflows(wanted, after, limit + 1))
        summaries: list[pb.WorkflowSummary] = []
        used = 0
        for row in rows[:limit]:
            summary = listing.summarize(row, now)
            used += summary.ByteSize() + 8
            if max_bytes is not None and used > max_bytes and summaries:
                return summaries, listing.cursor_of(rows[len(summaries) - 1].snapshot)
            summaries.append(summary)
        more = len(rows) > limit
        return summaries, listing.cursor_of(rows[limit - 1].snapshot) if more else None

    async def page_token_key(self) -> bytes:
        """The key that signs page tokens (PAGE-1.3): one per deployment, kept by the store, shared by replicas."""
        if self._page_token_key is None:
            candidate = secrets.token_bytes(32)
            self._page_token_key = await self.storage.write(lambda tx: tx.secret(PAGE_TOKEN_KEY, candidate))
        return self._page_token_key

    async def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        self.limits.check(snapshot, "snapshot")
        write = write_of(snapshot)
        inserted = await self.storage.write(lambda tx: tx.insert(write), single_statement=True)
        self._written(snapshot)
        return inserted

    @staticmethod
    async def _locked(tx: Transaction, instance_id: str) -> pb.WorkflowSnapshot:
        snapshot = await tx.load(instance_id, Lock.UPDATE)
        if snapshot is None:
            raise _not_found(instance_id)
        return snapshot

    # -- SignalStore -----------------------------------------------------------------------------

    async def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        """SIG-1; SIG-9.1: a request for a run no live claim holds is applied at once, in the same transaction."""
        now = self.now()

        async def store(tx: Transaction) -> None:
            # The row lock orders this against a claiming find, which locks the rows it claims (SIG-9.3).
            snapshot = await self._locked(tx, instance_id)
            if admit_signal(snapshot, kind) is SignalAdmission.STORE:
                await tx.put_signal(instance_id, kind, request)
                if await self._settle(tx, snapshot, now) is not None:
                    await tx.put(write_of(snapshot))

        await self.storage.write(store)

    async def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        pending = await self.storage.read(lambda tx: tx.signals(instance_id))
        return pending.get(kind)

    async def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        await self.storage.write(lambda tx: tx.delete_signal(instance_id, kind), single_statement=True)
        self.timer.reread()  # a wait the request held back may be due now

    async def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        """SIG-2.1; SIG-2.5: a run waiting at AtSignal for the name advances at once, in the same transaction."""
        now = self.now()

        async def send(tx: Transaction) -> None:
            snapshot = await tx.load(instance_id, Lock.UPDATE)  # the snapshot first, as every composite
            await tx.append_event(instance_id, signal_name, payload)
            if snapshot is not None and dispatch.awaited_signal_name(snapshot) == signal_name:
                signalled = await tx.has_signal(instance_id, SIGNAL_KINDS)
                await self._advance_one(tx, Candidate(snapshot, signalled, None), now)

        await self.storage.write(send)

    async def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        return await self.storage.write(lambda tx: tx.pop_event(instance_id, signal_name), single_statement=True)

    async def check_and_cancel(self, instance_id: str, interrupted_at_task: bytes | None = None) -> bool:
        return await self._apply_pending(instance_id, (CANCEL,), interrupted_at_task) is not None

    async def check_and_pause(self, instance_id: str) -> bool:
        return await self._apply_pending(instance_id, (PAUSE,), None) is not None

    async def check_control_signals(
        self, instance_id: str, interrupted_at_task: bytes | None = None
    ) -> ControlSignal | None:
        return await self._apply_pending(instance_id, (CANCEL, PAUSE), interrupted_at_task)

    async def _apply_pending(
        self, instance_id: str, kinds: tuple[SignalKind, ...], interrupted_at_task: bytes | None
    ) -> ControlSignal | None:
        """SIG-APPLY: apply the first pending request among `kinds` (cancel before pause) to an InProgress run."""
        # Nothing pending (the common case of a worker's guard) costs one read and no lock.
        if not await self.storage.read(lambda tx: tx.has_signal(instance_id, kinds)):
            return None
        now = self.now()

        async def apply(tx: Transaction) -> ControlSignal | None:
            snapshot = await tx.load(instance_id, Lock.UPDATE)  # the snapshot first, as store_signal: no deadlock
            if snapshot is None:
                return None
            kind = await _apply_first(tx, snapshot, kinds, interrupted_at_task, now)
            if kind is None:
                return None
            await tx.put(write_of(snapshot))
            return _CONTROL_SIGNALS[kind]

        return await self.storage.write(apply)

    @staticmethod
    async def _settle(tx: Transaction, snapshot: pb.WorkflowSnapshot, now: datetime) -> SignalKind | None:
        """SIG-9.1: with no live claim on any task of the locked run, its pending request (cancel before pause)
        applied in place, as the check composites apply it; the caller writes the snapshot."""
        if state_of(snapshot) != "in_progress":
            return None
        if any(claims.is_live(claim, now) for claim in await tx.claims_of(snapshot.instance_id)):
            return None  # the holder applies it at its next boundary (WORKER-1.3)
        return await _apply_first(tx, snapshot, SIGNAL_KINDS, None, now)

    async def _settle_released(self, instance_id: str) -> None:
        """SIG-9.2: after a claim ended, a request it held back applies now (a lock-free look first)."""
        if not await self.storage.read(lambda tx: tx.has_signal(instance_id, SIGNAL_KINDS)):
            return
        now = self.now()

        async def settle(tx: Transaction) -> None:
            snapshot = await tx.load(instance_id, Lock.UPDATE)
            if snapshot is not None and await self._settle(tx, snapshot, now) is not None:
                await tx.put(write_of(snapshot))

        await self.storage.write(settle)

    async def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        now = self.now()

        async def resume(tx: Transaction) -> pb.WorkflowSnapshot:
            snapshot = await self._locked(tx, instance_id)
            apply_unpause(snapshot, now)
            await self._settle(tx, snapshot, now)  # SIG-6.4: a cancel stored while Paused applies now
            await tx.put(write_of(snapshot))
            return snapshot

        resumed = await self.storage.write(resume)
        self._written(resumed)
        return resumed

    # -- TaskClaimStore --------------------------------------------------------------------------

    async def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        now = self.now()
        claim = claims.new_claim(instance_id, task_id, worker_id, now, ttl)
        return claim if await self.storage.write(lambda tx: tx.claim(claim, now), single_statement=True) else None

    async def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        answer = await self.storage.write(lambda tx: tx.release(instance_id, task_id, worker_id), single_statement=True)
        if not answer.done:
            raise claims.claim_error(instance_id, task_id, answer.holder)
        await self._settle_released(instance_id)

    async def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        expires_at = self.now() + ttl
        answer = await self.storage.write(
            lambda tx: tx.extend(instance_id, task_id, worker_id, expires_at), single_statement=True
        )
        if not answer.done:
            raise claims.claim_error(instance_id, task_id, answer.holder)

    async def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        """CLAIM-5; SNAP-1.4: FinalStateError, nothing written, over a final row (whoever holds the claim)."""
        self.limits.check(snapshot, "snapshot")
        write, now = write_of(snapshot, by_client=True), self.now()
        saved = await self.storage.write(
            lambda tx: tx.put_if_claimed(write, task_id, worker_id, now), single_statement=True
        )
        if not saved:
            await self._refuse_if_final(snapshot.instance_id)
        self._written(snapshot)
        return saved

    async def complete_task(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        """COMPLETE-1: the fenced save and the release of the claim in one transaction; False writes nothing.

        SNAP-1.4 as save_snapshot_fenced; SIG-9.2: a request the claim held back applies once it is released."""
        self.limits.check(snapshot, "snapshot")
        return await self._complete_checked(snapshot, task_id, worker_id)

    async def complete_tasks(self, completions: Sequence[TaskCompletion]) -> list[bool | FinalStateError]:
        """COMPLETE-2: every completion checked first (none written if one fails), then each as complete_task."""
        for index, completion in enumerate(completions):
            self.limits.check(completion.snapshot, f"completions[{index}].snapshot")
        answers = await asyncio.gather(
            *(self._complete_checked(*completion) for completion in completions), return_exceptions=True
        )
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, FinalStateError):
                raise answer
        return [answer for answer in answers if isinstance(answer, bool | FinalStateError)]

    async def _complete_checked(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        saved = await self._completions.submit(Completion(write_of(snapshot, by_client=True), task_id, worker_id))
        if not saved:
            await self._refuse_if_final(snapshot.instance_id)
            return False
        self._written(snapshot)
        if state_of(snapshot) == "in_progress":  # SIG-9 applies to running workflows only: no read for the others
            await self._settle_released(snapshot.instance_id)
        return True

    async def _complete_batch(self, completions: Sequence[Completion]) -> list[bool]:
        now = self.now()
        return await self.storage.write(lambda tx: tx.put_and_release_each(completions, now), single_statement=True)

    async def find_available_tasks(
        self,
        worker_id: str,
        limit: int,
        aging_interval: timedelta,
        worker_tags: Sequence[str],
        *,
        max_bytes: int | None = None,
    ) -> list[pb.AvailableTask]:
        """DISP-*; with `max_bytes`, only the dispatch-order prefix that fits in one response (SIZE-1.2)."""
        now = self.now()
        await self._advance_due(now)
        demand = selection.Demand(worker_id, limit, clamp_aging_interval(aging_interval), tuple(worker_tags), now)
        tasks = await self.storage.read(lambda tx: selection.choose(tx, demand))
        return self._fitting(tasks, max_bytes)

    def _fitting(self, tasks: list[pb.AvailableTask], max_bytes: int | None) -> list[pb.AvailableTask]:
        kept, passed_over = fitting(tasks, max_bytes)
        for instance_id in passed_over:
            logger.warning("task of %r is too large to dispatch in one message: passed over (SIZE-1.3)", instance_id)
        return kept

    async def claim_available_tasks(
        self,
        worker_id: str,
        limit: int,
        ttl: timedelta,
        *,
        aging_interval: timedelta = timedelta(0),
        worker_tags: Sequence[str] = (),
        definition_hashes: Sequence[bytes] = (),
        wait: timedelta = timedelta(0),
        max_bytes: int | None = None,
    ) -> list[pb.ClaimedTask]:
        """CLAIM-AVAIL-*: find, claim and guard at once; with nothing to claim, wait up to `wait`."""
        demand = ClaimDemand(worker_id, limit, ttl, aging_interval, worker_tags, definition_hashes, wait, max_bytes)
        subscription = self.wakeups.subscribe(demand.worker_tags) if demand.wait > timedelta(0) else None
        deadline = asyncio.get_running_loop().time() + demand.wait.total_seconds()
        try:
            while True:
                claimed = await self._claims.submit(demand)
                left = deadline - asyncio.get_running_loop().time()
                if claimed or left <= 0 or subscription is None:
                    return claimed
                # A hint says a task became ready; a delay coming due sends none, hence the recheck.
                await subscription.next(timedelta(seconds=min(left, CLAIM_RECHECK_SECONDS)))
        finally:
            if subscription is not None:
                subscription.close()

    async def _claim_batch(self, demands: Sequence[ClaimDemand]) -> list[list[pb.ClaimedTask]]:
        """CLAIM-AVAIL-1.5 once for the batch, then each demand in turn, in one transaction: a demand never sees
        the rows an earlier one claimed (they have a live claim now)."""
        now = self.now()
        await self._advance_due(now)

        async def claim_each(tx: Transaction) -> list[list[pb.ClaimedTask]]:
            return [await self._claim_for(tx, demand, now) for demand in demands]

        return await self.storage.write(claim_each)

    async def _claim_for(self, tx: Transaction, demand: ClaimDemand, now: datetime) -> list[pb.ClaimedTask]:
        chosen = selection.Demand(
            demand.worker_id,
            demand.limit,
            clamp_aging_interval(demand.aging_interval),
            tuple(demand.worker_tags),
            now,
            definition_hashes=frozenset(demand.definition_hashes),
            lock=True,
        )
        tasks = self._fitting(await selection.choose(tx, chosen), demand.max_bytes)
        leases = [claims.new_claim(t.instance_id, t.task_id, demand.worker_id, now, demand.ttl) for t in tasks]
        # A request stored just before the lock keeps its task: the guard says no.
        won = await tx.claim_unsignalled(leases, now) if leases else set()
        return [
            pb.ClaimedTask(task=task, claim=lease)
            for task, lease in zip(tasks, leases, strict=True)
            if (lease.instance_id, lease.task_id) in won
        ]

    async def _advance_due(self, now: datetime) -> int:
        """DISP-1 and DISP-2: drop expired claims; move due delays and answered or timed-out signal waits on.

        How many instances moved (the timer's measure of whether more may be due)."""
        due = await self.storage.read(lambda tx: tx.due_work(now, ADVANCE_BATCH))
        if not due.expired_claims and not due.instance_ids:
            return 0

        released: set[str] = set()

        async def advance(tx: Transaction) -> int:
            released.clear()
            if due.expired_claims:
                released.update(await tx.delete_expired_claims(now))
            moved = 0
            if due.instance_ids:
                for candidate in await tx.lock_due(due.instance_ids):
                    moved += await self._advance_one(tx, candidate, now)
            return moved

        moved = await self.storage.write(advance)
        # SIG-9.5: a request a dead holder's claim held back applies now; each in its own transaction, after the
        # claims' deletion committed, so the snapshot row is locked before any claim, as everywhere else.
        for instance_id in sorted(released):
            await self._settle_released(instance_id)
        return moved

    async def _advance_one(self, tx: Transaction, candidate: Candidate, now: datetime) -> bool:
        """DISP-2 on one locked row; whether it moved."""
        snapshot = candidate.snapshot
        if candidate.signalled or state_of(snapshot) != "in_progress":
            return False  # a pending cancel or pause keeps the run where it is
        if dispatch.is_delay_due(snapshot, now):
            dispatch.advance_past_delay(snapshot, now)
        else:
            signal_name = dispatch.awaited_signal_name(snapshot)
            if signal_name is None:
                return False
            payload = await tx.pop_event(snapshot.instance_id, signal_name)
            if payload is None and not dispatch.is_signal_timed_out(snapshot, now):
                return False
            dispatch.advance_past_signal(snapshot, payload or b"", now)
        try:
            self.limits.check(snapshot, "payload")
        except SnapshotTooLargeError as error:
            # SIZE-2.2: the event would make the run undeliverable; it fails, visibly, instead of blocking dispatch.
            snapshot.failed.CopyFrom(
                pb.FailedState(error=f"the event made the snapshot too large: {error.description}")
            )
        await tx.put(write_of(snapshot))
        return True

    async def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        return await self.wakeups.wait_for_wakeup(timeout, worker_tags)

    def watch_wakeups(self, worker_tags: Sequence[str] = ()) -> AsyncIterator[pb.TaskWakeupHint]:
        return self.wakeups.watch(worker_tags)

    async def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        """DISP-HINT: the hinted task if rule 3 still offers it; the hint's own tags fit by construction."""
        now = self.now()
        candidate = await self.storage.read(lambda tx: tx.hinted(hint.instance_id, hint.task_id))
        demand = selection.Demand("", 1, timedelta(seconds=1), (), now)
        if candidate is None or selection.accepted(candidate, demand) != hint.task_id:
            return None
        return dispatch.available_task(candidate.snapshot, (), now)

    # -- TaskResultStore -------------------------------------------------------------------------

    async def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        async def lookup(tx: Transaction) -> bytes | None:
            snapshot = await tx.load(instance_id)
            if snapshot is None:
                raise _not_found(instance_id)
            return lookup_task_result(snapshot, await tx.load_retained(instance_id), task_id)

        return await self.storage.read(lookup)

    # -- prepare_run -----------------------------------------------------------------------------

    async def prepare_run(
        self,
        instance_id: str,
        definition_hash: bytes,
        input: bytes,
        first_task: pb.FirstTask,
        conflict_policy: ConflictPolicy = enums.CONFLICT_POLICY_FAIL,
        trace_parent: str | None = None,
    ) -> pb.PrepareRunOutcome:
        """RUN-*: create a run or resolve the conflict; raises a RunConflictError subclass.

        `trace_parent` (the caller's W3C traceparent) goes into a fresh run's snapshot.
        """
        runs.check_instance_id(instance_id)

        async def attempt(tx: Transaction) -> pb.PrepareRunOutcome | None:
            existing = await tx.load(instance_id, Lock.UPDATE)
            if existing is not None:
                outcome = runs.existing_run_outcome(existing, definition_hash, conflict_policy)
                if outcome is not None:
                    return outcome
                await tx.delete(instance_id)
                await tx.delete_claims(instance_id)  # the old run's workers must not save over the new one
                for kind in SIGNAL_KINDS:
                    await tx.delete_signal(instance_id, kind)
            snapshot = runs.fresh_snapshot(instance_id, definition_hash, input, first_task, self.now(), trace_parent)
            self.limits.check(snapshot, "input")
            if await tx.insert(write_of(snapshot)):
                return pb.PrepareRunOutcome(fresh=pb.FreshRun(snapshot=snapshot))
            return None  # another caller's insert won: look at its run

        terminating = conflict_policy == enums.CONFLICT_POLICY_TERMINATE_EXISTING
        try:
            fresh = await self._insert_if_new(instance_id, definition_hash, input, first_task, trace_parent)
            if fresh is not None:
                return fresh
            for _ in range(_TERMINATE_ATTEMPTS if terminating else _RUN_ATTEMPTS):
                outcome = await self.storage.write(attempt)
                if outcome is not None:
                    return outcome
        except BackendError as error:
            raise RunBackendFailureError(str(error)) from error
        raise AlreadyExistsError(instance_id)

    async def _insert_if_new(
        self,
        instance_id: str,
        definition_hash: bytes,
        input: bytes,
        first_task: pb.FirstTask,
        trace_parent: str | None,
    ) -> pb.PrepareRunOutcome | None:
        """Most runs are new: one insert-if-absent creates them, without the locking composite an existing run
        needs. None when a run exists or the input is too large: the composite decides both, in RUN-2's order."""
        snapshot = runs.fresh_snapshot(instance_id, definition_hash, input, first_task, self.now(), trace_parent)
        if snapshot.ByteSize() > self.limits.max_snapshot_bytes:
            return None
        if await self.storage.write(lambda tx: tx.insert(write_of(snapshot)), single_statement=True):
            return pb.PrepareRunOutcome(fresh=pb.FreshRun(snapshot=snapshot))
        return None

    # -- lifecycle -------------------------------------------------------------------------------

    async def check_health(self) -> None:
        await self.storage.check_health()

    async def close(self) -> None:
        await self.timer.close()
        await self._completions.close()
        await self._claims.close()
        await self.storage.close()

    @property
    def description(self) -> str:
        return self.storage.description
