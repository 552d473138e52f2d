"""The operator's actions on one workflow, and the one line that tells why the server refused a call.

Cancel and pause are requests (StoreSignal) that a worker applies at its next checkpoint. A request on a
workflow no worker holds would wait for nobody (FindAvailableTasks hands out no task with a pending request,
DISP-3.2), so the console applies it at once, as that checkpoint would (CheckAndCancel, CheckAndPause).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from sayiir_client import (
    AccessDeniedError,
    AsyncPersistenceClient,
    BackendError,
    BackendUnavailableError,
    CannotCancelError,
    CannotPauseError,
    InvalidArgumentError,
    NotFoundError,
)
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb

APPLIED = "applied"
REQUESTED = "requested"
ALREADY = "already"
SENT = "sent"

OUTCOMES = {
    ("cancel", APPLIED): "Cancelled.",
    ("cancel", REQUESTED): "Cancel requested: the worker holding the task applies it at its next checkpoint.",
    ("cancel", ALREADY): "Already cancelled.",
    ("pause", APPLIED): "Paused.",
    ("pause", REQUESTED): "Pause requested: the worker holding the task applies it at its next checkpoint.",
    ("pause", ALREADY): "Already paused.",
    ("unpause", APPLIED): "Unpaused.",
    ("event", SENT): "Event sent.",
}
"""What the page says after an action, by (action, outcome): a fixed sentence, so a link cannot make it say more."""

ERRORS = (BackendError, AccessDeniedError, InvalidArgumentError)
"""What a call through the typed client raises when it fails."""


@dataclass(frozen=True)
class Refusal:
    """Why a call failed, for a person: an HTTP status and one line ("cannot cancel: Completed")."""

    status: int
    message: str
    permission_denied: bool = False


def refusal(action: str, error: Exception) -> Refusal:
    """The refusal of `action` ("cancel", "load", ...) that failed with this typed client error."""
    if isinstance(error, CannotCancelError | CannotPauseError):
        return Refusal(409, f"cannot {action}: {error.state}")
    if isinstance(error, NotFoundError):
        return Refusal(404, f"cannot {action}: no such workflow")
    if isinstance(error, AccessDeniedError):
        denied = error.code == grpc.StatusCode.PERMISSION_DENIED
        reason = "this token may only read" if denied else "the server does not know this token"
        return Refusal(403, f"cannot {action}: {reason} ({error})", permission_denied=denied)
    if isinstance(error, InvalidArgumentError):
        return Refusal(400, f"cannot {action}: invalid {error.field}: {error}")
    if isinstance(error, BackendUnavailableError):
        return Refusal(503, f"cannot {action}: unavailable: {error}")
    return Refusal(502, f"cannot {action}: {error}")


def _request(form: Mapping[str, str], now: datetime) -> pb.SignalRequest:
    """The cancel or pause request of the form's reason and author (each only when given)."""
    request = pb.SignalRequest()
    request.requested_at.FromDatetime(now)
    if reason := form.get("reason", "").strip():
        request.reason = reason
    if by := form.get("by", "").strip():
        request.requested_by = by
    return request


async def _state(client: AsyncPersistenceClient, instance_id: str) -> str | None:
    return (await client.load_snapshot(instance_id)).WhichOneof("state")


async def cancel(client: AsyncPersistenceClient, instance_id: str, form: Mapping[str, str]) -> str:
    """Request a cancel: the server applies it at once unless a worker holds the run (SIG-9.1); a Paused
    workflow is unpaused, which applies the cancel stored meanwhile (SIG-9.4)."""
    if await _state(client, instance_id) == "cancelled":
        return ALREADY
    await client.store_signal(instance_id, enums.SIGNAL_KIND_CANCEL, _request(form, datetime.now(UTC)))
    if await _state(client, instance_id) == "paused":
        await client.unpause(instance_id)
    return APPLIED if await _state(client, instance_id) == "cancelled" else REQUESTED


async def pause(client: AsyncPersistenceClient, instance_id: str, form: Mapping[str, str]) -> str:
    """Request a pause: the server applies it at once unless a worker holds the run (SIG-9.1)."""
    if await _state(client, instance_id) == "paused":
        return ALREADY
    await client.store_signal(instance_id, enums.SIGNAL_KIND_PAUSE, _request(form, datetime.now(UTC)))
    return APPLIED if await _state(client, instance_id) == "paused" else REQUESTED


async def unpause(client: AsyncPersistenceClient, instance_id: str, form: Mapping[str, str]) -> str:
    await client.unpause(instance_id)
    return APPLIED


async def send_event(client: AsyncPersistenceClient, instance_id: str, form: Mapping[str, str]) -> str:
    """Append an event (its payload as UTF-8) to the workflow's queue of that name (SIG-2.1)."""
    await client.send_event(instance_id, form.get("name", ""), form.get("payload", "").encode())
    return SENT


Perform = Callable[[AsyncPersistenceClient, str, Mapping[str, str]], Awaitable[str]]

PERFORM: Mapping[str, Perform] = {"cancel": cancel, "pause": pause, "unpause": unpause, "event": send_event}
"""Each action by the name of its URL (/workflow/NAME): it answers an outcome of OUTCOMES."""

FORM_FIELDS: Mapping[str, tuple[str, ...]] = {
    "cancel": ("reason", "by"),
    "pause": ("reason", "by"),
    "unpause": (),
    "event": ("name", "payload"),
}


def form_fields(action: str, form: Mapping[str, str]) -> list[tuple[str, str]]:
    """The action's own fields of the form, as the confirmation page carries them on."""
    return [(name, form.get(name, "")) for name in FORM_FIELDS[action]]
