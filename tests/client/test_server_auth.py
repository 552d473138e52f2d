"""The client's bearer token against the server's real token authentication (sayiir_server.mesh.auth)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from sayiir_client import AccessDeniedError, AsyncPersistenceClient, DefinitionHash, TaskId
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.mesh.auth import TokenAuthInterceptor
from tests.client.serving import served_backend

TASK = TaskId.from_name("task")
DEFINITION = DefinitionHash.from_name("definition")


async def test_the_servers_token_auth_accepts_the_clients_token_and_refusals_are_typed(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("w0rker worker\nre4der reader\n")
    auth = TokenAuthInterceptor(str(token_file))

    async with served_backend(InMemoryBackend(), [auth]) as address:
        async with AsyncPersistenceClient(address, token="w0rker") as worker:
            await worker.prepare_run("order-1", DEFINITION, b"", pb.FirstTask(task_id=TASK))
        async with AsyncPersistenceClient(address, token="re4der") as reader:
            assert (await reader.load_snapshot("order-1")).instance_id == "order-1"
            with pytest.raises(AccessDeniedError) as denied:
                await reader.claim_task("order-1", TASK, "reader", None)
        async with AsyncPersistenceClient(address) as anonymous:
            with pytest.raises(AccessDeniedError) as unauthenticated:
                await anonymous.load_snapshot("order-1")

    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert unauthenticated.value.code == grpc.StatusCode.UNAUTHENTICATED
