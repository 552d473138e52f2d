"""The machinery of the kit: checks named by rule id, the calls a check makes, and how a failure is told.

A check is an async function taking a `Trial`. It talks to the server through the
generated stubs only (`Trial.ok`, `Trial.refused`, `Trial.attempt`), so every call
is recorded; a broken rule raises `RuleViolationError`, which carries what was sent, what
came back and what the rule expects. Every id a check uses comes from its trial
(`instance`, `tag`, `worker`, `definition`), unique to the run and the check, and
the trial deletes what the check created afterwards, so checks are safe on a
server other programs use.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NoReturn, TypeVar

import grpc
from google.protobuf import text_format
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import error_details_pb2 as details
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as services

ERROR_DOMAIN = "persistence.sayiir.dev"
"""ErrorInfo.domain of the errors the contract defines (ERR-1.1)."""

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""Trailer carrying the serialized google.rpc.Status."""

SHOWN_CHARACTERS = 700
"""How much of one message a report shows; longer text is cut."""

_Request = TypeVar("_Request", bound=Message)
_Response = TypeVar("_Response", bound=Message)


class RuleViolationError(Exception):
    """A rule did not hold: what was sent, what came back, what the rule expects."""

    def __init__(self, expected: str, sent: str, received: str) -> None:
        super().__init__(expected)
        self.expected = expected
        self.sent = sent
        self.received = received


class NotObservableError(Exception):
    """The check could not be observed on this server (e.g. foreign traffic in the way, an option not given)."""


@dataclass(frozen=True)
class Refusal:
    """A call that ended with a status other than OK, as the wire carried it."""

    code: grpc.StatusCode
    message: str
    info: error_details_pb2.ErrorInfo | None
    """The ErrorInfo of our domain, if any."""
    foreign_infos: tuple[error_details_pb2.ErrorInfo, ...]
    """ErrorInfos of other domains."""
    violations: tuple[error_details_pb2.BadRequest.FieldViolation, ...]
    conflict: details.RunConflict | None
    has_details: bool
    """Whether the trailers held a google.rpc.Status at all."""

    @property
    def reason(self) -> str | None:
        return self.info.reason if self.info is not None else None

    @property
    def metadata(self) -> Mapping[str, str]:
        return dict(self.info.metadata) if self.info is not None else {}

    def describe(self) -> str:
        parts = [f"status {self.code.name}", f"message {self.message!r}"]
        if self.info is not None:
            parts.append(
                f"ErrorInfo(domain={self.info.domain!r}, reason={self.info.reason!r}, metadata={self.metadata})"
            )
        parts.extend(
            f"foreign ErrorInfo(domain={info.domain!r}, reason={info.reason!r})" for info in self.foreign_infos
        )
        parts.extend(f"BadRequest(field={v.field!r}, description={v.description!r})" for v in self.violations)
        if self.conflict is not None:
            parts.append(f"RunConflict({shown(self.conflict)})")
        if not self.has_details:
            parts.append("no google.rpc.Status in the trailers")
        return ", ".join(parts)


def refusal_of(error: grpc.aio.AioRpcError) -> Refusal:
    """Decode a failed call's status and its details (unknown detail types are skipped)."""
    status = _rich_status(error.trailing_metadata() or ())
    ours: error_details_pb2.ErrorInfo | None = None
    foreign: list[error_details_pb2.ErrorInfo] = []
    violations: list[error_details_pb2.BadRequest.FieldViolation] = []
    conflict: details.RunConflict | None = None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN and ours is None:
                ours = info
            else:
                foreign.append(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(bad_request.field_violations)
        elif detail.Is(details.RunConflict.DESCRIPTOR):
            conflict = details.RunConflict()
            detail.Unpack(conflict)
    return Refusal(
        code=error.code(),
        message=error.details() or "",
        info=ours,
        foreign_infos=tuple(foreign),
        violations=tuple(violations),
        conflict=conflict,
        has_details=status is not None,
    )


def _rich_status(trailers: Iterable[tuple[str, str | bytes]]) -> status_pb2.Status | None:
    for key, value in trailers:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except DecodeError:
                return None
            return status
    return None


def shown(message: Message) -> str:
    """A message as one line of protobuf text, cut to SHOWN_CHARACTERS."""
    text = text_format.MessageToString(message, as_one_line=True) or "(empty)"
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + " …"


@dataclass
class Exchange:
    """One call of a check: the method, the request, and the response or the refusal."""

    method: str
    request: Message
    response: Message | None = None
    refusal: Refusal | None = None

    def sent(self) -> str:
        return f"{self.method}({shown(self.request)})"

    def received(self) -> str:
        if self.refusal is not None:
            return self.refusal.describe()
        return f"OK: {shown(self.response)}" if self.response is not None else "(no answer yet)"


@dataclass(frozen=True)
class Stubs:
    """The five services of sayiir.persistence.v1 on one channel."""

    snapshots: services.SnapshotStoreAsyncStub
    signals: services.SignalStoreAsyncStub
    claims: services.TaskClaimStoreAsyncStub
    results: services.TaskResultStoreAsyncStub
    lifecycle: services.LifecycleAsyncStub

    @classmethod
    def on(cls, channel: grpc.aio.Channel) -> Stubs:
        return cls(
            services.SnapshotStoreStub(channel),
            services.SignalStoreStub(channel),
            services.TaskClaimStoreStub(channel),
            services.TaskResultStoreStub(channel),
            services.LifecycleStub(channel),
        )


Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Settings:
    """What every trial of one run shares."""

    prefix: str
    """Start of every instance id, tag and worker id of this run."""
    metadata: Metadata = ()
    """Sent with every call (the bearer token)."""
    deadline: timedelta = timedelta(seconds=10)
    """Deadline of one call."""
    clock_slack: timedelta = timedelta(seconds=5)
    """How far the server's clock may stray from the kit's (MODEL-1.5)."""
    max_wait_timeout: timedelta | None = None
    """The server's --max-wait-timeout when the caller gave it (WAKE-2.2), else None."""
    max_message_bytes: int | None = None
    """The server's --max-message-bytes when the caller gave it (ERR-2.2), else None."""
    token_given: bool = False
    reader_metadata: Metadata | None = None
    """The metadata of a reader-role token when the caller gave one (ERR-5.2), else None."""


UnaryMethod = grpc.aio.UnaryUnaryMultiCallable[_Request, _Response]


class Trial:
    """One check's session with the server: its calls, its ids, and what it must clean up."""

    def __init__(self, rule: str, index: int, stubs: Stubs, channel: grpc.aio.Channel, settings: Settings) -> None:
        self.rule = rule
        self.stubs = stubs
        self.channel = channel
        self.settings = settings
        self._stem = f"{settings.prefix}{rule.lower()}-{index}"
        self._serial = 0
        self.exchanges: list[Exchange] = []
        self.instances: list[str] = []
        self.events: set[tuple[str, str]] = set()
        self.claims: set[tuple[str, bytes, str]] = set()

    # -- ids ------------------------------------------------------------------------------------------------------

    def _next(self, label: str) -> str:
        self._serial += 1
        return f"{self._stem}-{label}{self._serial}"

    def instance(self, label: str = "i") -> str:
        """A fresh instance id of this check, deleted (with its signals and events) after it."""
        instance_id = self._next(label)
        self.instances.append(instance_id)
        return instance_id

    def adopt(self, instance_id: str) -> str:
        """Clean up an instance id the check built itself (e.g. one of exactly 256 bytes)."""
        self.instances.append(instance_id)
        return instance_id

    def tag(self, label: str = "t") -> str:
        """A task tag no other check or program uses, to isolate this check's tasks in dispatch."""
        return self._next(label)

    def worker(self, label: str = "w") -> str:
        return self._next(label)

    @property
    def definition(self) -> bytes:
        """This check's own definition hash (32 bytes)."""
        return hashlib.sha256(f"definition of {self._stem}".encode()).digest()

    # -- calls ----------------------------------------------------------------------------------------------------

    async def attempt(
        self, method: UnaryMethod[_Request, _Response], request: _Request, extra_metadata: Metadata = ()
    ) -> _Response | Refusal:
        """Call and record; a refusal is returned, not raised."""
        exchange = Exchange(type(request).DESCRIPTOR.name.removesuffix("Request"), request)
        self.exchanges.append(exchange)
        self._remember(request)
        try:
            response = await method(
                request,
                timeout=self.settings.deadline.total_seconds(),
                metadata=(*self.settings.metadata, *extra_metadata),
            )
        except grpc.aio.AioRpcError as error:
            exchange.refusal = refusal_of(error)
            return exchange.refusal
        exchange.response = response
        self._remember_claims(response)
        return response

    async def ok(
        self, method: UnaryMethod[_Request, _Response], request: _Request, extra_metadata: Metadata = ()
    ) -> _Response:
        """Call; the rule expects success."""
        answer = await self.attempt(method, request, extra_metadata)
        if isinstance(answer, Refusal):
            self.fail("the call succeeds")
        return answer

    async def refused(
        self,
        method: UnaryMethod[_Request, _Response],
        request: _Request,
        code: grpc.StatusCode,
        reason: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Refusal:
        """Call; the rule expects this code, an ErrorInfo of our domain with this reason, and these metadata."""
        wanted = f"status {code.name} with ErrorInfo(domain={ERROR_DOMAIN!r}, reason={reason!r}"
        wanted += f", metadata including {dict(metadata)})" if metadata else ")"
        answer = await self.attempt(method, request)
        if not isinstance(answer, Refusal) or answer.code != code or answer.reason != reason:
            self.fail(wanted)
        for key, value in (metadata or {}).items():
            self.expect(answer.metadata.get(key) == value, wanted)
        return answer

    async def invalid(self, method: UnaryMethod[_Request, _Response], request: _Request, field_path: str) -> Refusal:
        """Call; the rule expects the malformed-field error of ID-3.1 naming `field_path`."""
        refusal = await self.refused(
            method, request, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", {"field": field_path}
        )
        self.expect(
            len(refusal.violations) == 1
            and refusal.violations[0].field == field_path
            and bool(refusal.violations[0].description),
            f"ID-3.1: one BadRequest field violation, field {field_path!r}, with a description",
        )
        self.expect(field_path in refusal.message, f"ID-3.1: the status message names the field {field_path!r}")
        return refusal

    def _remember(self, request: Message) -> None:
        if isinstance(request, rr.SendEventRequest):
            self.events.add((request.instance_id, request.signal_name))

    def _remember_claims(self, response: Message) -> None:
        if isinstance(response, rr.ClaimTaskResponse) and response.HasField("claim"):
            claim = response.claim
            self.claims.add((claim.instance_id, claim.task_id, claim.worker_id))
        elif isinstance(response, rr.ClaimAvailableTasksResponse):
            for item in response.tasks:
                self.claims.add((item.claim.instance_id, item.claim.task_id, item.claim.worker_id))

    # -- verdicts -------------------------------------------------------------------------------------------------

    def fail(self, expected: str, exchange: Exchange | None = None) -> NoReturn:
        """Raise the violation of `expected`, showing `exchange` (default: the last call)."""
        shown_exchange = exchange or (self.exchanges[-1] if self.exchanges else None)
        if shown_exchange is None:
            raise RuleViolationError(expected, "(nothing)", "(nothing)")
        raise RuleViolationError(expected, shown_exchange.sent(), shown_exchange.received())

    def expect(self, condition: bool, expected: str, exchange: Exchange | None = None) -> None:
        if not condition:
            self.fail(expected, exchange)

    @property
    def last(self) -> Exchange:
        return self.exchanges[-1]

    # -- cleaning up ----------------------------------------------------------------------------------------------

    async def clean_up(self) -> None:
        """Release the claims, drain the events, clear the signals and delete the snapshots of this check."""
        quiet = _Quiet(self.settings)
        for instance_id, task_id, worker_id in self.claims:
            await quiet.call(
                self.stubs.claims.ReleaseTaskClaim,
                rr.ReleaseTaskClaimRequest(instance_id=instance_id, task_id=task_id, worker_id=worker_id),
            )
        for instance_id, name in self.events:
            for _ in range(100):  # bounded: a server that never empties the FIFO must not hang the kit
                answer = await quiet.call(
                    self.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=instance_id, signal_name=name)
                )
                if not isinstance(answer, rr.ConsumeEventResponse) or not answer.HasField("payload"):
                    break
        for instance_id in self.instances:
            for kind in (enums.SIGNAL_KIND_CANCEL, enums.SIGNAL_KIND_PAUSE):
                await quiet.call(
                    self.stubs.signals.ClearSignal, rr.ClearSignalRequest(instance_id=instance_id, kind=kind)
                )
            await quiet.call(self.stubs.snapshots.DeleteSnapshot, rr.DeleteSnapshotRequest(instance_id=instance_id))


class _Quiet:
    """Calls whose answer does not matter (clean-up): failures are ignored."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def call(self, method: UnaryMethod[_Request, _Response], request: _Request) -> _Response | None:
        try:
            return await method(
                request, timeout=self._settings.deadline.total_seconds(), metadata=self._settings.metadata
            )
        except grpc.aio.AioRpcError:
            return None


CheckFunction = Callable[[Trial], Awaitable[None]]


@dataclass(frozen=True)
class Check:
    """One behaviour check, named by the rule of docs/behaviour.md it observes."""

    rule: str
    title: str
    run: CheckFunction

    @property
    def name(self) -> str:
        return f"{self.rule} {self.title}"


@dataclass
class Registry:
    """Every check of the kit, in the order they were declared."""

    checks: list[Check] = field(default_factory=list)

    def check(self, rule: str, title: str) -> Callable[[CheckFunction], CheckFunction]:
        def register(function: CheckFunction) -> CheckFunction:
            self.checks.append(Check(rule, title, function))
            return function

        return register

    def select(self, patterns: Sequence[str]) -> list[Check]:
        """The checks whose rule id matches one of the glob patterns (all of them without patterns)."""
        if not patterns:
            return list(self.checks)
        wanted = [pattern.upper() for pattern in patterns]
        return [c for c in self.checks if any(fnmatch.fnmatchcase(c.rule, pattern) for pattern in wanted)]


REGISTRY = Registry()
check = REGISTRY.check
