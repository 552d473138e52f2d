"""Starting runs in contract tests: the one place that says how prepare_run reaches the store."""

from __future__ import annotations

from sayiir_client import AsyncPersistenceClient
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.lifecycle import prepare_run
from sayiir_server.model import ConflictPolicy
from sayiir_server.store import Backend
from tests.contract.builders import DEFINITION_HASH, first_task


async def start_run(
    store: Backend,
    instance_id: str,
    *,
    input: bytes = b"initial input",
    first: pb.FirstTask | None = None,
    definition_hash: bytes = DEFINITION_HASH,
    policy: ConflictPolicy = enums.CONFLICT_POLICY_FAIL,
) -> pb.PrepareRunOutcome:
    """prepare_run over the store under test (SPEC.md §7).

    Through a client it is the PrepareRun RPC: the server runs prepare_run atomically
    on its backend, where the client's own insert_snapshot_if_absent could not.
    """
    first = first or first_task()
    if isinstance(store, AsyncPersistenceClient):
        return await store.prepare_run(instance_id, definition_hash, input, first, policy)
    return await prepare_run(store, instance_id, definition_hash, input, first, policy)
