"""How values read: hashes, times (local zone and relative), sizes, enum names; the same in table and JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb

SHORT_HASH_DIGITS = 12
"""Hex digits of a hash in a table (JSON has all 64)."""


def short_hash(value: bytes) -> str:
    return value.hex()[:SHORT_HASH_DIGITS] if value else ""


def state_name(state: enums.WorkflowState.ValueType) -> str:
    """ "in_progress", "completed", ...: the state oneof names of a snapshot."""
    return enums.WorkflowState.Name(state).removeprefix("WORKFLOW_STATE_").lower()


def position_kind_name(kind: enums.PositionKind.ValueType) -> str | None:
    """ "at_task", "at_delay", ...; None outside InProgress and Paused."""
    if kind == enums.POSITION_KIND_UNSPECIFIED:
        return None
    return enums.PositionKind.Name(kind).removeprefix("POSITION_KIND_").lower()


def moment(message: Message, field: str) -> datetime | None:
    """The Timestamp field `field` of `message` as an aware UTC datetime, or None when it is not set."""
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)


def iso(when: datetime | None) -> str | None:
    """JSON's times: RFC 3339 in UTC with microseconds ("2026-12-02T17:05:03.123456Z")."""
    if when is None:
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def relative(when: datetime, now: datetime) -> str:
    """ "just now", "5s ago", "in 3m", "2h ago", "4d ago"."""
    seconds = (when - now).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    amount = _rounded(timedelta(seconds=abs(seconds)))
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def _rounded(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def local_time(when: datetime | None, now: datetime) -> str:
    """A table's times: the local zone, with how long ago (or how soon); "" when there is none."""
    if when is None:
        return ""
    local = when.astimezone()
    shown = local.strftime("%H:%M:%S") if local.date() == now.astimezone().date() else local.strftime("%Y-%m-%d %H:%M")
    return f"{shown} ({relative(when, now)})"


def full_local_time(when: datetime | None, now: datetime) -> str:
    """`workflow show`'s times: the full local date, time and zone, and the relative time."""
    if when is None:
        return ""
    return f"{when.astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')} ({relative(when, now)})"


def size(count: int) -> str:
    """ "12 B", "2.0 KiB", "1.5 MiB"."""
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024 / 1024:.1f} MiB"


def signal_json(request: pb.SignalRequest | None) -> dict[str, object] | None:
    if request is None:
        return None
    return {
        "reason": request.reason if request.HasField("reason") else None,
        "requested_by": request.requested_by if request.HasField("requested_by") else None,
        "requested_at": iso(moment(request, "requested_at")),
    }


def claim_json(claim: pb.TaskClaim | None) -> dict[str, object] | None:
    if claim is None:
        return None
    return {
        "worker_id": claim.worker_id,
        "task_id": claim.task_id.hex(),
        "claimed_at": iso(moment(claim, "claimed_at")),
        "expires_at": iso(moment(claim, "expires_at")),
    }


def summary_json(summary: pb.WorkflowSummary) -> dict[str, object]:
    """One workflow of `workflow list --output json`: every key always present (null when absent)."""
    return {
        "instance_id": summary.instance_id,
        "definition_hash": summary.definition_hash.hex(),
        "state": state_name(summary.state),
        "position": position_kind_name(summary.position_kind),
        "current_task_id": summary.current_task_id.hex() if summary.HasField("current_task_id") else None,
        "priority": summary.priority,
        "tags": list(summary.tags),
        "created_at": iso(moment(summary, "created_at")),
        "updated_at": iso(moment(summary, "updated_at")),
        "pending_cancel": signal_json(summary.pending_cancel if summary.HasField("pending_cancel") else None),
        "pending_pause": signal_json(summary.pending_pause if summary.HasField("pending_pause") else None),
        "claim": claim_json(summary.claim if summary.HasField("claim") else None),
        "retry_attempts": summary.retry_attempts,
        "next_retry_at": iso(moment(summary, "next_retry_at")),
    }


def pending(summary: pb.WorkflowSummary) -> str:
    """The pending control requests of a summary, for a table ("cancel", "pause", "cancel, pause" or "")."""
    kinds = [("cancel", summary.HasField("pending_cancel")), ("pause", summary.HasField("pending_pause"))]
    return ", ".join(kind for kind, present in kinds if present)
