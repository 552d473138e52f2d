"""Size rules (docs/behaviour.md SIZE-*): no payload twice in one message, no response over the message limit.

A dispatched task carries its snapshot, and its input lives in that snapshot
already, so on the wire the input field is left empty and `input_in_snapshot`
says where to read it (SIZE-1.1). A find or claim answers the most urgent
tasks that fit in one message, in dispatch order, stopping before the first
that does not (SIZE-1.2). A snapshot too large to ever be dispatched within the
limit is refused when it is written (SIZE-2.1), so no stored task can block
dispatch; one that got too large anyway (a smaller limit after a restart) is
passed over with a warning rather than stopping every worker (SIZE-1.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.errors import InvalidFieldError

DISPATCH_RESERVE = 4096
"""Bytes a dispatched task may add around its snapshot: ids (instance ≤ 256, task and definition 32 each), the
trace parent (≤ 512), the claim of a claimed task (instance, task, worker ≤ 256, two timestamps) and framing."""

MAX_TRACE_PARENT_BYTES = 512
"""Longest trace_parent a snapshot may carry (a W3C traceparent is 55 characters)."""


class SnapshotTooLargeError(InvalidFieldError):
    """A write would store a snapshot larger than any response could carry (SIZE-2): INVALID_ARGUMENT."""

    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(field, f"makes the snapshot {size} bytes, over the limit of {limit} (--max-message-bytes)")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class SizeLimits:
    """The limits that follow from the largest message the server sends."""

    max_message_bytes: int

    @property
    def max_snapshot_bytes(self) -> int:
        """SIZE-2.1: the largest snapshot that can still be dispatched in one message."""
        return max(self.max_message_bytes - DISPATCH_RESERVE, 0)

    def check(self, snapshot: pb.WorkflowSnapshot, field: str) -> None:
        """Refuse a snapshot that could never be dispatched within the limit."""
        size = snapshot.ByteSize()
        if size > self.max_snapshot_bytes:
            raise SnapshotTooLargeError(field, size, self.max_snapshot_bytes)


UNLIMITED = SizeLimits(2**62)


def wire_task(task: pb.AvailableTask) -> pb.AvailableTask:
    """SIZE-1.1: the task as it travels, its input read from the snapshot instead of sent twice."""
    compact = pb.AvailableTask()
    compact.CopyFrom(task)
    compact.ClearField("input")
    compact.input_in_snapshot = True
    return compact


def _varint_bytes(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def dispatched_bytes(task: pb.AvailableTask) -> int:
    """What one task adds to a find or claim response: its wire form, a claim's reserve, and framing."""
    size = task.ByteSize()
    if task.input:
        size -= 1 + _varint_bytes(len(task.input)) + len(task.input)
    size += 2  # input_in_snapshot = true
    return size + DISPATCH_RESERVE // 2


def fitting(tasks: list[pb.AvailableTask], budget: int | None) -> tuple[list[pb.AvailableTask], list[str]]:
    """SIZE-1.2 and SIZE-1.3: the dispatch-order prefix that fits in `budget` bytes, and the instance ids of
    tasks passed over because they could not fit even alone."""
    if budget is None:
        return tasks, []
    kept: list[pb.AvailableTask] = []
    passed_over: list[str] = []
    used = 0
    for task in tasks:
        size = dispatched_bytes(task)
        if size > budget:
            passed_over.append(task.instance_id)
            continue
        if used + size > budget:
            break
        kept.append(task)
        used += size
    return kept, passed_over
