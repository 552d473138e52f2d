"""Bearer-token authentication with two roles, read from a token file and re-read on SIGHUP.

The token file holds one `TOKEN ROLE` pair per line; blank lines and lines
starting with `#` are ignored. `worker` may call every RPC; `reader` only the
read RPCs (READER_METHODS). Health checking and reflection stay open, so
probes and tools need no token.

Tokens are kept only as SHA-256 digests and compared with hmac.compare_digest
against every known digest (no early exit), so neither a token's length nor
which entry matched shows in the timing. Tokens never appear in logs or errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from sayiir_client.v1 import service_pb2
from sayiir_server.api.grpc_errors import DOMAIN
from sayiir_server.mesh.calls import Context, Continuation, Handler, original_behavior, responses_of, with_behavior

logger = logging.getLogger(__name__)

AUTHORIZATION_KEY: Final = "authorization"
BEARER_SCHEME: Final = "bearer"


class Role(StrEnum):
    WORKER = "worker"
    """Runs workflows: may call every RPC."""
    READER = "reader"
    """Dashboards and tooling: may only call READER_METHODS."""


def _method_path(service: str, method: str) -> str:
    descriptor = service_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    return f"/{descriptor.containing_service.full_name}/{descriptor.name}"


READER_METHODS: Final = frozenset(
    {
        _method_path("SnapshotStore", "LoadSnapshot"),
        _method_path("SnapshotStore", "ListSnapshots"),
        _method_path("SnapshotStore", "ListWorkflows"),
        _method_path("SignalStore", "GetSignal"),
        _method_path("TaskResultStore", "LoadTaskResult"),
    }
)
"""Full paths of the RPCs a reader may call: those that change nothing."""

OPEN_SERVICES: Final = frozenset(
    {
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
        # Not served, but open so that tools trying v1 first get UNIMPLEMENTED and fall back to v1alpha.
        "grpc.reflection.v1.ServerReflection",
    }
)
"""Services any caller may use without a token."""


class TokenFileError(ValueError):
    """The token file cannot be read or is malformed; the message names the line, never the token."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class TokenTable:
    """Known tokens (as digests) and their roles."""

    entries: tuple[tuple[bytes, Role], ...]

    def role_of(self, token: str) -> Role | None:
        """The role of `token`, or None; takes the same time whichever entry matches, if any."""
        return self.role_of_digest(_digest(token))

    def role_of_digest(self, presented: bytes) -> Role | None:
        role: Role | None = None
        for digest, entry_role in self.entries:
            if hmac.compare_digest(digest, presented):
                role = entry_role
        return role

    @classmethod
    def parse(cls, text: str, source: str) -> TokenTable:
        entries: list[tuple[bytes, Role]] = []
        first_line_of: dict[bytes, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 2:
                raise TokenFileError(f"{source}, line {number}: expected 'TOKEN ROLE', found {len(fields)} field(s)")
            token, role_name = fields
            try:
                role = Role(role_name)
            except ValueError:
                roles = " or ".join(role.value for role in Role)
                raise TokenFileError(f"{source}, line {number}: unknown role {role_name!r} (use {roles})") from None
            digest = _digest(token)
            if digest in first_line_of:
                raise TokenFileError(f"{source}, line {number}: the token of line {first_line_of[digest]} again")
            first_line_of[digest] = number
            entries.append((digest, role))
        if not entries:
            raise TokenFileError(f"{source}: no tokens (every call would be refused)")
        return cls(tuple(entries))

    @classmethod
    def load(cls, path: str) -> TokenTable:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise TokenFileError(f"cannot read token file {path}: {reason}") from None
        return cls.parse(text, path)


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    reason: str
    """ErrorInfo reason: UNAUTHENTICATED or PERMISSION_DENIED."""
    message: str


def bearer_token(metadata: Sequence[tuple[str, Any]]) -> str | None:
    """The token of an `authorization: Bearer TOKEN` entry, or None."""
    for key, value in metadata:
        if key.lower() != AUTHORIZATION_KEY or not isinstance(value, str):
            continue
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == BEARER_SCHEME and token.strip():
            return token.strip()
    return None


def is_open(method: str) -> bool:
    """Whether any caller may call `method` (a full path), token or not."""
    return method.lstrip("/").rpartition("/")[0] in OPEN_SERVICES


def check_call(table: TokenTable, method: str, metadata: Sequence[tuple[str, Any]]) -> Refusal | None:
    """Why the call must be refused, or None when it may go on."""
    token = bearer_token(metadata)
    return check_digest(table, method, None if token is None else _digest(token))


def check_digest(table: TokenTable, method: str, digest: bytes | None) -> Refusal | None:
    """check_call for a token known by its digest (None: no token), as open streams keep it."""
    if is_open(method):
        return None
    if digest is None:
        return Refusal(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", "missing 'authorization: Bearer' token")
    role = table.role_of_digest(digest)
    if role is None:
        return Refusal(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", "unknown bearer token")
    if role is Role.READER and method not in READER_METHODS:
        return Refusal(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", f"role reader may not call {method}")
    return None


def _refusal_status(refusal: Refusal, method: str) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=refusal.reason, domain=DOMAIN, metadata={"method": method})
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=refusal.code.value[0], message=refusal.message, details=[detail])
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


@dataclass(eq=False)
class _OpenStream:
    """A streaming call let in, and what it was let in with: checked again at every reload."""

    method: str
    digest: bytes | None
    ended: asyncio.Future[Refusal]
    """Set by a reload that no longer lets the call in."""


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a known token (UNAUTHENTICATED) or whose role does not allow them (PERMISSION_DENIED).

    A reload also ends the open streams (WatchWakeups) it would refuse now, with the same status.
    """

    def __init__(self, token_file: str) -> None:
        """Reads the token file at once: a missing or malformed file raises TokenFileError."""
        self.token_file = token_file
        self._table = TokenTable.load(token_file)
        self._open_streams: set[_OpenStream] = set()

    @property
    def token_count(self) -> int:
        return len(self._table.entries)

    def reload(self) -> bool:
        """Re-read the token file (on SIGHUP); on error keep the current tokens, log why, and return False."""
        try:
            self._table = TokenTable.load(self.token_file)
        except TokenFileError as error:
            logger.error("token file not reloaded, keeping the %d current tokens: %s", self.token_count, error)
            return False
        ended = self._end_refused_streams()
        logger.info("token file reloaded: %d tokens; %d open streams ended", self.token_count, ended)
        return True

    def _end_refused_streams(self) -> int:
        ended = 0
        for stream in self._open_streams:
            refusal = check_digest(self._table, stream.method, stream.digest)
            if refusal is not None and not stream.ended.done():
                stream.ended.set_result(refusal)
                ended += 1
        return ended

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Handler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        metadata = tuple(details.invocation_metadata or ())
        refusal = check_call(self._table, details.method, metadata)
        if refusal is None:
            if handler.response_streaming and not is_open(details.method):
                return self._revocable(handler, details.method, bearer_token(metadata))
            return handler
        status = _refusal_status(refusal, details.method)

        async def refuse(request: Any, context: Context) -> Any:
            logger.debug("refused %s from %s: %s", details.method, context.peer(), refusal.message)
            await context.abort_with_status(status)

        async def refuse_stream(request: Any, context: Context) -> AsyncIterator[Any]:
            await refuse(request, context)
            yield  # never reached: makes this an async generator, as streaming handlers must be

        return with_behavior(handler, refuse, refuse_stream)

    def _revocable(self, handler: Handler, method: str, token: str | None) -> Handler:
        """`handler`, its stream ended with the refusal of a reload that no longer lets it in."""
        behavior = original_behavior(handler)
        digest = None if token is None else _digest(token)

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            opened = _OpenStream(method, digest, asyncio.get_running_loop().create_future())
            self._open_streams.add(opened)
            try:
                async for response in _until_ended(responses_of(behavior(request, context)), opened.ended):
                    yield response
            finally:
                self._open_streams.discard(opened)
            if opened.ended.done():
                refusal = opened.ended.result()
                logger.info("ended a %s stream at the token reload: %s", method, refusal.message)
                await context.abort_with_status(_refusal_status(refusal, method))

        return with_behavior(handler, behavior, stream)


async def _until_ended(responses: AsyncIterator[Any], ended: asyncio.Future[Refusal]) -> AsyncIterator[Any]:
    """The responses, until they end or `ended` is set first (the pending step is then cancelled and unwound)."""
    while True:
        step = asyncio.ensure_future(anext(responses))
        try:
            await asyncio.wait({step, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the call itself is cancelled: the step must not outlive it
            if not step.done():
                step.cancel()
                await asyncio.wait({step})
        if step.cancelled():
            return
        try:
            response = step.result()
        except StopAsyncIteration:
            return
        yield response
