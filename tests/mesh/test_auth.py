"""Bearer tokens with roles: the token file, the refusal matrix over the wire, and SIGHUP's reload."""

from __future__ import annotations

import asyncio
import hmac
import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from sayiir_client import AccessDeniedError, AsyncPersistenceClient
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.api.grpc_errors import DOMAIN
from sayiir_server.mesh.auth import READER_METHODS, Role, TokenAuthInterceptor, TokenFileError, TokenTable, bearer_token
from sayiir_server.mesh.mesh import MeshOptions
from tests.mesh.serving import (
    EVERY_RPC,
    READER_TOKEN,
    TOKEN_FILE_TEXT,
    WORKER_TOKEN,
    Served,
    at_task_snapshot,
    bearer,
    call,
    node_id,
    rpc,
    serving,
    status_code,
)

REFUSALS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
READ_RPCS = [method for method in EVERY_RPC if method.path in READER_METHODS]
WRITE_RPCS = [method for method in EVERY_RPC if method.path not in READER_METHODS]


# --- the token file --------------------------------------------------------------------------------------------------


def test_the_token_file_maps_each_token_to_its_role_ignoring_comments_and_blank_lines() -> None:
    table = TokenTable.parse(TOKEN_FILE_TEXT, "tokens")
    assert len(table.entries) == 2
    assert table.role_of(WORKER_TOKEN) is Role.WORKER
    assert table.role_of(READER_TOKEN) is Role.READER
    assert table.role_of("# tokens") is None
    assert table.role_of("unknown") is None


def test_the_table_keeps_digests_never_the_tokens_themselves() -> None:
    table = TokenTable.parse(TOKEN_FILE_TEXT, "tokens")
    assert WORKER_TOKEN.encode() not in b"".join(digest for digest, _ in table.entries)
    assert WORKER_TOKEN not in repr(table)


def test_a_lookup_compares_against_every_known_token_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    table = TokenTable.parse("first worker\nsecond reader\nthird reader\n", "tokens")
    comparisons: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def counting_compare(a: bytes, b: bytes) -> bool:
        comparisons.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting_compare)
    assert table.role_of("first") is Role.WORKER
    assert len(comparisons) == 3
    assert {len(a) for a, _ in comparisons} == {len(b) for _, b in comparisons} == {32}  # digests: no length leak


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("lonely-token\n", "line 1: expected 'TOKEN ROLE', found 1 field"),
        ("# ok\ntoken worker extra\n", "line 2: expected 'TOKEN ROLE', found 3 field"),
        ("token admin\n", "line 1: unknown role 'admin' (use worker or reader)"),
        ("token worker\n\ntoken reader\n", "line 3: the token of line 1 again"),
        ("# only comments\n\n", "no tokens"),
    ],
)
def test_a_malformed_token_file_is_refused_naming_the_line_but_not_the_token(text: str, problem: str) -> None:
    with pytest.raises(TokenFileError) as raised:
        TokenTable.parse(text, "tokens")
    assert problem in str(raised.value)
    assert "lonely-token" not in str(raised.value)


def test_a_missing_token_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=r"cannot read token file .*missing"):
        TokenAuthInterceptor(str(tmp_path / "missing"))


@pytest.mark.parametrize(
    ("metadata", "token"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer  abc "),), "abc"),
        ((("x-other", "1"), ("authorization", "Bearer abc")), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer "),), None),
        ((), None),
    ],
)
def test_the_bearer_token_is_read_from_the_authorization_metadata(
    metadata: tuple[tuple[str, str], ...], token: str | None
) -> None:
    assert bearer_token(metadata) == token


# --- the matrix over the wire ----------------------------------------------------------------------------------------


@pytest.fixture
async def served(token_file: Path) -> Any:
    async with serving(MeshOptions(auth_tokens=str(token_file))) as served:
        yield served


@pytest.fixture
async def channel(served: Served) -> Any:
    async with grpc.aio.insecure_channel(served.address) as channel:
        yield channel


async def test_every_rpc_without_a_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    codes = {method.name: await status_code(channel, method) for method in EVERY_RPC}
    assert codes == {method.name: grpc.StatusCode.UNAUTHENTICATED for method in EVERY_RPC}


async def test_every_rpc_with_an_unknown_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    codes = {method.name: await status_code(channel, method, metadata=bearer("forged")) for method in EVERY_RPC}
    assert codes == {method.name: grpc.StatusCode.UNAUTHENTICATED for method in EVERY_RPC}


async def test_a_reader_calling_any_write_rpc_is_permission_denied(channel: grpc.aio.Channel) -> None:
    codes = {method.name: await status_code(channel, method, metadata=bearer(READER_TOKEN)) for method in WRITE_RPCS}
    assert codes == {method.name: grpc.StatusCode.PERMISSION_DENIED for method in WRITE_RPCS}


async def test_a_reader_may_call_the_five_read_rpcs(served: Served, channel: grpc.aio.Channel) -> None:
    await served.backend.save_snapshot(at_task_snapshot("order-1"))
    reads = {
        "LoadSnapshot": rr.LoadSnapshotRequest(instance_id="order-1"),
        "ListSnapshots": rr.ListSnapshotsRequest(),
        "ListWorkflows": rr.ListWorkflowsRequest(),
        "GetSignal": rr.GetSignalRequest(instance_id="order-1", kind=enums.SIGNAL_KIND_CANCEL),
        "LoadTaskResult": rr.LoadTaskResultRequest(instance_id="order-1", task_id=node_id("fetch")),
    }
    assert sorted(reads) == sorted(method.name for method in READ_RPCS)
    for name, request in reads.items():
        await call(channel, rpc(name), request, metadata=bearer(READER_TOKEN))  # raises unless OK


async def test_a_worker_may_call_every_rpc(channel: grpc.aio.Channel) -> None:
    # Empty requests: the servicer answers (often INVALID_ARGUMENT); what matters is that auth let them through.
    codes = {
        method.name: await status_code(channel, method, metadata=bearer(WORKER_TOKEN), timeout=0.5)
        for method in EVERY_RPC
    }
    assert not {name: code for name, code in codes.items() if code in REFUSALS}


async def test_a_refusal_carries_an_error_info_reason(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(channel, rpc("SaveSnapshot"), metadata=bearer(READER_TOKEN))
    status = rpc_status.from_call(raised.value)
    info = error_details_pb2.ErrorInfo()
    assert status is not None
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("PERMISSION_DENIED", DOMAIN)
    assert info.metadata["method"] == "/sayiir.persistence.v1.SnapshotStore/SaveSnapshot"


async def test_health_checking_stays_open_without_a_token(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service="sayiir.persistence.v1.Lifecycle"), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
    first = await anext(aiter(watch))
    watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_stays_open_without_a_token(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    first = await anext(aiter(responses))
    names = {service.name for service in first.list_services_response.service}
    assert "sayiir.persistence.v1.SnapshotStore" in names


async def test_tokens_never_reach_the_logs(channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for token in (WORKER_TOKEN, READER_TOKEN, "forged-token-123"):
        for name in ("SaveSnapshot", "LoadSnapshot"):
            await status_code(channel, rpc(name), metadata=bearer(token))
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert "refused" in logged  # the refusals were logged ...
    for token in (WORKER_TOKEN, READER_TOKEN, "forged-token-123"):
        assert token not in logged  # ... without the tokens


async def test_the_python_client_attaches_its_token(served: Served) -> None:
    async with AsyncPersistenceClient(served.address, token=WORKER_TOKEN) as client:
        await client.save_snapshot(at_task_snapshot("order-2"))
    async with AsyncPersistenceClient(served.address, token=READER_TOKEN) as client:
        assert (await client.load_snapshot("order-2")).instance_id == "order-2"
        with pytest.raises(AccessDeniedError) as denied:
            await client.delete_snapshot("order-2")
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    async with AsyncPersistenceClient(served.address) as client:
        with pytest.raises(AccessDeniedError) as missing:
            await client.load_snapshot("order-2")
    assert missing.value.code == grpc.StatusCode.UNAUTHENTICATED


# --- reload (SIGHUP) -------------------------------------------------------------------------------------------------


async def test_a_reload_takes_the_new_tokens_and_drops_the_removed_ones(
    served: Served, channel: grpc.aio.Channel, token_file: Path
) -> None:
    await asyncio.to_thread(token_file.write_text, "rotated-token worker\n")
    served.mesh.reload()
    load = rpc("ListSnapshots")
    assert await status_code(channel, load, metadata=bearer("rotated-token")) == grpc.StatusCode.OK
    assert await status_code(channel, load, metadata=bearer(WORKER_TOKEN)) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_malformed_file_on_reload_keeps_the_current_tokens_and_logs_why(
    served: Served, channel: grpc.aio.Channel, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(token_file.write_text, "secret-but-broken worker extra\n")
    assert served.mesh.auth is not None
    assert served.mesh.auth.reload() is False
    assert await status_code(channel, rpc("ListSnapshots"), metadata=bearer(WORKER_TOKEN)) == grpc.StatusCode.OK
    (error,) = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert "keeping the 2 current tokens" in error.getMessage()
    assert "line 1" in error.getMessage()
    assert "secret-but-broken" not in error.getMessage()


async def _open_watch(channel: grpc.aio.Channel, token: str) -> Any:
    stream = channel.unary_stream(
        rpc("WatchWakeups").path,
        request_serializer=rr.WatchWakeupsRequest.SerializeToString,
        response_deserializer=rr.WatchWakeupsResponse.FromString,
    )(rr.WatchWakeupsRequest(), metadata=bearer(token), timeout=30)
    await asyncio.wait_for(stream.initial_metadata(), 5)
    return stream


async def test_a_reload_ends_the_open_watch_streams_of_removed_tokens_with_unauthenticated(
    served: Served, channel: grpc.aio.Channel, token_file: Path
) -> None:
    revoked = await _open_watch(channel, WORKER_TOKEN)
    await asyncio.to_thread(token_file.write_text, "rotated-token worker\n")
    served.mesh.reload()

    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(revoked.read(), 5)
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    status = rpc_status.from_call(ended.value)
    info = error_details_pb2.ErrorInfo()
    assert status is not None
    assert status.details[0].Unpack(info)
    assert info.reason == "UNAUTHENTICATED"


async def test_a_reload_keeps_the_open_watch_streams_of_tokens_still_valid(
    served: Served, channel: grpc.aio.Channel, token_file: Path
) -> None:
    stream = await _open_watch(channel, WORKER_TOKEN)
    await asyncio.to_thread(token_file.write_text, f"{WORKER_TOKEN} worker\nrotated-token worker\n")
    served.mesh.reload()

    await call(
        channel, rpc("SaveSnapshot"), rr.SaveSnapshotRequest(snapshot=at_task_snapshot("order-1")), bearer(WORKER_TOKEN)
    )
    reply = await asyncio.wait_for(stream.read(), 5)
    assert reply.hint.instance_id == "order-1"
    stream.cancel()


async def test_a_reload_ends_the_open_watch_streams_of_a_token_demoted_to_reader_with_permission_denied(
    served: Served, channel: grpc.aio.Channel, token_file: Path
) -> None:
    stream = await _open_watch(channel, WORKER_TOKEN)
    await asyncio.to_thread(token_file.write_text, f"{WORKER_TOKEN} reader\n")
    served.mesh.reload()

    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(stream.read(), 5)
    assert ended.value.code() == grpc.StatusCode.PERMISSION_DENIED
