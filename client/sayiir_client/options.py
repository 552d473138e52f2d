"""Connection options of the clients, and the channel configuration built from them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

IDEMPOTENT_METHODS: tuple[str, ...] = (
    # Pure reads: repeating them changes nothing.
    "sayiir.persistence.v1.SnapshotStore/LoadSnapshot",
    "sayiir.persistence.v1.SnapshotStore/ListSnapshots",
    "sayiir.persistence.v1.SnapshotStore/ListWorkflows",
    "sayiir.persistence.v1.SignalStore/GetSignal",
    "sayiir.persistence.v1.TaskClaimStore/FindHintedTask",
    "sayiir.persistence.v1.TaskResultStore/LoadTaskResult",
    "grpc.health.v1.Health/Check",
    # FindAvailableTasks only advances what time or buffered events already released, and records
    # that in the snapshot; a repeat finds the instance advanced and lists the same (unclaimed) tasks.
    "sayiir.persistence.v1.TaskClaimStore/FindAvailableTasks",
    # Hints are advisory: a repeated wait at worst misses one, which find_available_tasks covers.
    "sayiir.persistence.v1.TaskClaimStore/WaitForWakeup",
    # Writes that set a value rather than change it: the repeat writes the same thing and gets the
    # same answer. SaveTaskResult is keyed by task id; StoreSignal replaces the pending request;
    # ClearSignal never fails; ExtendTaskClaim sets expires_at = now + ttl (absolute, not added);
    # SaveSnapshotFenced rewrites the same snapshot and answers true while the claim is still held.
    "sayiir.persistence.v1.SnapshotStore/SaveSnapshot",
    "sayiir.persistence.v1.SnapshotStore/SaveTaskResult",
    "sayiir.persistence.v1.SignalStore/StoreSignal",
    "sayiir.persistence.v1.SignalStore/ClearSignal",
    "sayiir.persistence.v1.TaskClaimStore/ExtendTaskClaim",
    "sayiir.persistence.v1.TaskClaimStore/SaveSnapshotFenced",
)
"""Full names of the RPCs the channel retries on UNAVAILABLE.

UNAVAILABLE may arrive after the server already applied the call (the connection dropped on the way back), so
only RPCs whose repeat has the same effect AND the same answer are listed. Left out: SendEvent (appends a
second copy), ConsumeEvent (pops a second event), ClaimTask (the repeat sees the caller's own live claim and
answers "no claim"), ClaimAvailableTasks (the repeat claims other tasks), CompleteTask (the repeat after a
success answers false: the claim is gone), CheckAndCancel / CheckAndPause / CheckControlSignals (the repeat
answers false/none after the first applied the signal), Unpause (the repeat fails: not paused), PrepareRun
(the repeat finds the run it just created: AlreadyExists), DeleteSnapshot and ReleaseTaskClaim (the effect is
idempotent but the repeat answers NOT_FOUND for a call that succeeded), and the WatchWakeups stream (the
client reconnects it itself). StoreSignal is listed although a repeat landing after the request was applied
AND undone (pause, then unpause) would pause again: that needs two other calls inside one backoff window, and
a lost cancel or pause request is the worse failure."""


@dataclass(frozen=True)
class RetryOptions:
    """Exponential backoff for UNAVAILABLE on idempotent RPCs, applied by the channel's service config.

    The same backoff paces the reconnects of `watch_wakeups`.
    """

    max_attempts: int = 5
    """Total attempts including the first, 2 to 5 (gRPC caps retry policies at 5)."""
    initial_backoff: timedelta = timedelta(milliseconds=100)
    """Upper bound of the random delay before the first retry."""
    max_backoff: timedelta = timedelta(seconds=5)
    """Cap of the backoff, however many attempts were made."""
    backoff_multiplier: float = 2.0
    """Factor applied to the backoff after each attempt."""

    def __post_init__(self) -> None:
        if not 2 <= self.max_attempts <= 5:
            raise ValueError("max_attempts must be between 2 and 5")
        if self.initial_backoff <= timedelta(0) or self.max_backoff < self.initial_backoff:
            raise ValueError("backoffs must be positive and max_backoff >= initial_backoff")
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be at least 1")

    def backoff(self, attempt: int) -> timedelta:
        """The capped backoff before retry number `attempt` (1-based)."""
        grown = self.initial_backoff * self.backoff_multiplier ** (attempt - 1)
        return min(grown, self.max_backoff)


@dataclass(frozen=True)
class KeepaliveOptions:
    """HTTP/2 pings that detect a dead connection under a long poll or an open WatchWakeups stream.

    The defaults respect what a gRPC server accepts unless configured otherwise: pings at most every
    5 minutes and none while no call is open. A server receiving pings more often hangs up with
    GOAWAY "too_many_pings", so shorten `interval` only together with the server's
    grpc.http2.min_ping_interval_without_data_ms (and grpc.keepalive_permit_without_calls).
    """

    interval: timedelta = timedelta(minutes=5, seconds=10)
    """Time between pings (grpc.keepalive_time_ms); just above gRPC servers' default minimum of 5 minutes."""
    timeout: timedelta = timedelta(seconds=20)
    """How long to wait for a ping's answer before the connection is considered dead."""
    permit_without_calls: bool = False
    """Ping even when no call is in flight; gRPC servers refuse such pings unless told to permit them."""


DEFAULT_DEADLINE = timedelta(seconds=30)
"""Deadline of a call when the client is not given one."""

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message sent or received by default: the server's default, since a snapshot carries every output."""


def service_config(retry: RetryOptions | None) -> str:
    """The channel's service config (JSON): the retry policy on the idempotent methods."""
    if retry is None:
        return json.dumps({"methodConfig": []})
    names = [{"service": name.split("/")[0], "method": name.split("/")[1]} for name in IDEMPOTENT_METHODS]
    policy = {
        "maxAttempts": retry.max_attempts,
        "initialBackoff": _seconds(retry.initial_backoff),
        "maxBackoff": _seconds(retry.max_backoff),
        "backoffMultiplier": retry.backoff_multiplier,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": policy}]})


def channel_options(
    retry: RetryOptions | None, keepalive: KeepaliveOptions | None, max_message_bytes: int | None
) -> list[tuple[str, str | int]]:
    """gRPC channel arguments for the options (shared by the blocking and the asyncio client)."""
    options: list[tuple[str, str | int]] = [
        ("grpc.enable_retries", 1 if retry is not None else 0),
        ("grpc.service_config", service_config(retry)),
    ]
    if keepalive is not None:
        options += [
            ("grpc.keepalive_time_ms", _millis(keepalive.interval)),
            ("grpc.keepalive_timeout_ms", _millis(keepalive.timeout)),
            ("grpc.keepalive_permit_without_calls", int(keepalive.permit_without_calls)),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    if max_message_bytes is not None:
        options += [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
    return options


def _seconds(duration: timedelta) -> str:
    return f"{duration.total_seconds():.3f}s"


def _millis(duration: timedelta) -> int:
    return int(duration.total_seconds() * 1000)
