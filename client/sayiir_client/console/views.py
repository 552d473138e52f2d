"""What the pages show, computed from summaries and snapshots: plain values the templates print (and escape).

Nothing here talks to the server or knows about HTTP, so every rule of what is shown is testable on its own.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb

STATES: Mapping[str, enums.WorkflowState.ValueType] = {
    "in_progress": enums.WORKFLOW_STATE_IN_PROGRESS,
    "paused": enums.WORKFLOW_STATE_PAUSED,
    "completed": enums.WORKFLOW_STATE_COMPLETED,
    "failed": enums.WORKFLOW_STATE_FAILED,
    "cancelled": enums.WORKFLOW_STATE_CANCELLED,
}
"""The states by the names the console's URLs use (the WorkflowSnapshot.state oneof names)."""

STATE_NAMES: Mapping[enums.WorkflowState.ValueType, str] = {
    enums.WORKFLOW_STATE_IN_PROGRESS: "InProgress",
    enums.WORKFLOW_STATE_PAUSED: "Paused",
    enums.WORKFLOW_STATE_COMPLETED: "Completed",
    enums.WORKFLOW_STATE_FAILED: "Failed",
    enums.WORKFLOW_STATE_CANCELLED: "Cancelled",
}
"""The names docs/behaviour.md gives the states (SIG-1.4), as shown to people."""

POSITION_NAMES: Mapping[enums.PositionKind.ValueType, str] = {
    enums.POSITION_KIND_NOT_STARTED: "NotStarted",
    enums.POSITION_KIND_AT_TASK: "AtTask",
    enums.POSITION_KIND_AT_FORK: "AtFork",
    enums.POSITION_KIND_AT_JOIN: "AtJoin",
    enums.POSITION_KIND_AT_DELAY: "AtDelay",
    enums.POSITION_KIND_AT_SIGNAL: "AtSignal",
    enums.POSITION_KIND_IN_LOOP: "InLoop",
}

PRIORITIES = (1, 2, 3, 4, 5)
PREVIEW_CHARACTERS = 200
SHORT_HEX_DIGITS = 12


# --- single values ----------------------------------------------------------------------------------------------


def short_hex(data: bytes) -> str:
    """The first hex digits of a 32-byte id: enough to tell ids apart on a page (the whole id is in its title)."""
    return data.hex()[:SHORT_HEX_DIGITS]


def byte_size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


def time_of(message: Message, name: str) -> datetime | None:
    """The Timestamp field `name` of `message` as an aware UTC datetime, None when not set."""
    if not message.HasField(name):
        return None
    stamp: Timestamp = getattr(message, name)
    return stamp.ToDatetime(tzinfo=UTC)


def absolute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(moment: datetime, now: datetime) -> str:
    """ "12 s ago", "in 3 min": how far from now, in the largest whole unit."""
    seconds = round((moment - now).total_seconds())
    amount = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if amount >= size:
            text = f"{amount // size} {unit}"
            break
    else:
        text = f"{amount} s"
    return f"in {text}" if seconds > 0 else f"{text} ago"


@dataclass(frozen=True)
class Moment:
    """A point in time as a page shows it: absolute, relative to the page's now, and ISO for the countdowns."""

    absolute: str
    relative: str
    iso: str
    past: bool

    @classmethod
    def of(cls, moment: datetime, now: datetime) -> Moment:
        return cls(absolute(moment), relative(moment, now), moment.isoformat(), moment <= now)


def moment_of(message: Message, name: str, now: datetime) -> Moment | None:
    moment = time_of(message, name)
    return None if moment is None else Moment.of(moment, now)


@dataclass(frozen=True)
class Preview:
    """The start of an output: as text when it is UTF-8 without control characters, else its first bytes in hex."""

    size: str
    text: str | None
    hex: str | None
    truncated: bool


def preview(data: bytes) -> Preview:
    size = byte_size(len(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _printable(text):
        return Preview(size, text[:PREVIEW_CHARACTERS], None, len(text) > PREVIEW_CHARACTERS)
    limit = PREVIEW_CHARACTERS // 8
    return Preview(size, None, data[:limit].hex(" "), len(data) > limit)


def _printable(text: str) -> bool:
    return all(character in "\n\r\t" or unicodedata.category(character) != "Cc" for character in text)


# --- the workflows page -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimView:
    worker: str
    task: str
    task_hex: str
    claimed: Moment | None
    expires: Moment | None
    """None: the claim never expires."""


def claim_view(claim: pb.TaskClaim, now: datetime) -> ClaimView:
    return ClaimView(
        worker=claim.worker_id,
        task=short_hex(claim.task_id),
        task_hex=claim.task_id.hex(),
        claimed=moment_of(claim, "claimed_at", now),
        expires=moment_of(claim, "expires_at", now),
    )


@dataclass(frozen=True)
class SummaryRow:
    """One line of the workflows table."""

    instance_id: str
    state: str
    position: str
    task: str
    task_hex: str
    definition: str
    definition_hex: str
    priority: int
    tags: tuple[str, ...]
    updated: Moment | None
    pending: tuple[str, ...]
    """"cancel" and/or "pause" when requested and not applied yet."""
    claim: ClaimView | None
    retry_attempts: int


def summary_row(summary: pb.WorkflowSummary, now: datetime) -> SummaryRow:
    task_id = summary.current_task_id if summary.HasField("current_task_id") else b""
    return SummaryRow(
        instance_id=summary.instance_id,
        state=STATE_NAMES.get(summary.state, "unknown"),
        position=POSITION_NAMES.get(summary.position_kind, ""),
        task=short_hex(task_id),
        task_hex=task_id.hex(),
        definition=short_hex(summary.definition_hash),
        definition_hex=summary.definition_hash.hex(),
        priority=summary.priority,
        tags=tuple(summary.tags),
        updated=moment_of(summary, "updated_at", now),
        pending=pending_requests(summary),
        claim=claim_view(summary.claim, now) if summary.HasField("claim") else None,
        retry_attempts=summary.retry_attempts,
    )


def pending_requests(summary: pb.WorkflowSummary) -> tuple[str, ...]:
    requested = (("cancel", summary.HasField("pending_cancel")), ("pause", summary.HasField("pending_pause")))
    return tuple(kind for kind, pending in requested if pending)


# --- the dispatch page ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchView:
    """Dispatch as the summaries of in-progress workflows show it."""

    ready_by_priority: Mapping[int, int]
    """Tasks a worker may take now, per priority 1 to 5: at a task, unclaimed, no pending request, not backing off."""
    backing_off: int
    """At a task waiting out a retry delay."""
    held_by_request: int
    """At a task with a pending cancel or pause: not handed out until someone applies it."""
    claims_by_worker: Sequence[tuple[str, int]]
    """Live claims per worker, the busiest first."""
    expired_claims: Sequence[tuple[str, ClaimView]]
    """(instance id, claim) of claims whose expiry has passed by the console's clock."""
    scanned: int
    complete: bool
    """False when the scan stopped at the console's limit: the figures cover the newest `scanned` workflows."""


def dispatch_view(summaries: Iterable[pb.WorkflowSummary], now: datetime, *, complete: bool) -> DispatchView:
    ready: Counter[int] = Counter()
    workers: Counter[str] = Counter()
    expired: list[tuple[str, ClaimView]] = []
    backing_off = held = scanned = 0
    for summary in summaries:
        scanned += 1
        if summary.HasField("claim"):
            workers[summary.claim.worker_id] += 1
            claim = claim_view(summary.claim, now)
            if claim.expires is not None and claim.expires.past:
                expired.append((summary.instance_id, claim))
            continue
        if summary.state != enums.WORKFLOW_STATE_IN_PROGRESS or not summary.HasField("current_task_id"):
            continue
        retry_at = time_of(summary, "next_retry_at")
        if pending_requests(summary):
            held += 1
        elif retry_at is not None and retry_at > now:
            backing_off += 1
        else:
            ready[summary.priority] += 1
    return DispatchView(
        ready_by_priority={priority: ready[priority] for priority in PRIORITIES},
        backing_off=backing_off,
        held_by_request=held,
        claims_by_worker=sorted(workers.items(), key=lambda item: (-item[1], item[0])),
        expired_claims=expired,
        scanned=scanned,
        complete=complete,
    )


# --- one workflow -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    """One labelled value of a workflow page; `moment` renders as a time (counting down when in the future)."""

    label: str
    text: str = ""
    moment: Moment | None = None


@dataclass(frozen=True)
class CompletedTask:
    number: int
    task: str
    task_hex: str
    output: Preview
    last: bool
    """The task that completed most recently (last_completed_task_id)."""


@dataclass(frozen=True)
class RetryView:
    task: str
    task_hex: str
    attempts: int
    max_retries: int
    next_retry: Moment | None
    last_error: str
    last_failed_worker: str | None


@dataclass(frozen=True)
class PendingRequest:
    """A cancel or pause requested and not applied yet."""

    kind: str
    details: tuple[Detail, ...]


@dataclass(frozen=True)
class WorkflowView:
    instance_id: str
    state: str
    definition_hex: str
    created: Moment | None
    updated: Moment | None
    priority: int
    tags: tuple[str, ...]
    position: str
    position_details: tuple[Detail, ...]
    state_details: tuple[Detail, ...]
    timeline: tuple[CompletedTask, ...]
    retries: tuple[RetryView, ...]
    deadline: Moment | None
    final_output: Preview | None
    pending: tuple[PendingRequest, ...]
    claim: ClaimView | None


def workflow_view(
    snapshot: pb.WorkflowSnapshot,
    now: datetime,
    pending: Mapping[str, pb.SignalRequest],
    claim: pb.TaskClaim | None,
) -> WorkflowView:
    """The page of one workflow: its snapshot, its pending requests ("cancel", "pause") and its live claim."""
    state = snapshot.WhichOneof("state") or ""
    position = _position(snapshot)
    return WorkflowView(
        instance_id=snapshot.instance_id,
        state=STATE_NAMES[STATES[state]] if state in STATES else "unknown",
        definition_hex=snapshot.definition_hash.hex(),
        created=moment_of(snapshot, "created_at", now),
        updated=moment_of(snapshot, "updated_at", now),
        priority=snapshot.task_priority if snapshot.HasField("task_priority") else 3,
        tags=tuple(snapshot.task_tags),
        position=_position_name(position),
        position_details=_position_details(position, now),
        state_details=_state_details(snapshot, now),
        timeline=_timeline(snapshot),
        retries=tuple(_retry_view(retry, now) for retry in snapshot.task_retries),
        deadline=moment_of(snapshot.task_deadline, "deadline", now) if snapshot.HasField("task_deadline") else None,
        final_output=preview(snapshot.completed.final_output) if state == "completed" else None,
        pending=tuple(PendingRequest(kind, _request_details(request, now)) for kind, request in pending.items()),
        claim=claim_view(claim, now) if claim is not None else None,
    )


def _position(snapshot: pb.WorkflowSnapshot) -> pb.ExecutionPosition | None:
    state = snapshot.WhichOneof("state")
    if state == "in_progress":
        return snapshot.in_progress.position
    if state == "paused":
        return snapshot.paused.position
    return None


def _position_name(position: pb.ExecutionPosition | None) -> str:
    kind = position.WhichOneof("position") if position is not None else None
    return "".join(part.capitalize() for part in kind.split("_")) if kind else ""


def _task_detail(label: str, message: Message, name: str) -> tuple[Detail, ...]:
    return (Detail(label, getattr(message, name).hex()),) if message.HasField(name) else ()


def _position_details(position: pb.ExecutionPosition | None, now: datetime) -> tuple[Detail, ...]:
    kind = position.WhichOneof("position") if position is not None else None
    if position is None or kind is None:
        return ()
    if kind == "at_task":
        return (Detail("task", position.at_task.task_id.hex()),)
    if kind in ("at_fork", "at_join"):
        node = position.at_fork if kind == "at_fork" else position.at_join
        branches = ", ".join(sorted(node.completed_branches)) or "none yet"
        return (Detail("node", getattr(node, f"{kind[3:]}_id").hex()), Detail("branches done", branches))
    if kind == "at_delay":
        delay = position.at_delay
        wake = moment_of(delay, "wake_at", now)
        return (Detail("wakes", moment=wake), *_task_detail("then task", delay, "next_task_id"))
    if kind == "at_signal":
        wait = position.at_signal
        timeout = moment_of(wait, "wake_at", now)
        waits = (
            Detail("event", wait.signal_name),
            Detail("times out", moment=timeout) if timeout else Detail("times out", "never"),
        )
        return (*waits, *_task_detail("then task", wait, "next_task_id"))
    if kind == "in_loop":
        loop = position.in_loop
        return (Detail("iteration", str(loop.iteration)), *_task_detail("task", loop, "next_task_id"))
    return ()


def _request_details(request: pb.SignalRequest, now: datetime) -> tuple[Detail, ...]:
    details = [Detail("requested", moment=moment_of(request, "requested_at", now))]
    if request.HasField("requested_by"):
        details.append(Detail("by", request.requested_by))
    if request.HasField("reason"):
        details.append(Detail("reason", request.reason))
    return tuple(details)


def _state_details(snapshot: pb.WorkflowSnapshot, now: datetime) -> tuple[Detail, ...]:
    state = snapshot.WhichOneof("state")
    if state == "failed":
        return (Detail("error", snapshot.failed.error),)
    if state == "cancelled":
        cancelled = snapshot.cancelled
        by = cancelled.cancelled_by if cancelled.HasField("cancelled_by") else None
        reason = cancelled.reason if cancelled.HasField("reason") else None
        stop = _stop_details("cancelled", moment_of(cancelled, "cancelled_at", now), by, reason)
        return (*stop, *_task_detail("interrupted task", cancelled, "interrupted_at_task"))
    if state == "paused":
        paused = snapshot.paused
        by = paused.paused_by if paused.HasField("paused_by") else None
        reason = paused.reason if paused.HasField("reason") else None
        return _stop_details("paused", moment_of(paused, "paused_at", now), by, reason)
    return ()


def _stop_details(verb: str, at: Moment | None, by: str | None, reason: str | None) -> tuple[Detail, ...]:
    details = [Detail(f"{verb} at", moment=at)]
    details += [Detail("by", by)] if by is not None else []
    details += [Detail("reason", reason)] if reason is not None else []
    return tuple(details)


def _timeline(snapshot: pb.WorkflowSnapshot) -> tuple[CompletedTask, ...]:
    state = snapshot.WhichOneof("state")
    if state not in ("in_progress", "paused", "cancelled"):
        return ()
    holder: pb.InProgressState | pb.PausedState | pb.CancelledState = getattr(snapshot, state)
    last = b""
    if not isinstance(holder, pb.CancelledState) and holder.HasField("last_completed_task_id"):
        last = holder.last_completed_task_id
    return tuple(
        CompletedTask(
            number, short_hex(result.task_id), result.task_id.hex(), preview(result.output), result.task_id == last
        )
        for number, result in enumerate(holder.completed_tasks, start=1)
    )


def _retry_view(retry: pb.TaskRetryState, now: datetime) -> RetryView:
    return RetryView(
        task=short_hex(retry.task_id),
        task_hex=retry.task_id.hex(),
        attempts=retry.attempts,
        max_retries=retry.policy.max_retries,
        next_retry=moment_of(retry, "next_retry_at", now),
        last_error=retry.last_error,
        last_failed_worker=retry.last_failed_worker if retry.HasField("last_failed_worker") else None,
    )
