"""Starting runs in contract tests: the one place that says how prepare_run reaches the store."""

from __future__ import annotations

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import ConflictPolicy
from sayiir_server.domain.traits import Backend
from tests.contract.builders import DEFINITION_HASH, first_task, task_id


async def start_run(
    store: Backend,
    instance_id: str,
    *,
    input: bytes = b"initial input",
    first: pb.FirstTask | None = None,
    definition_hash: bytes = DEFINITION_HASH,
    policy: ConflictPolicy = enums.CONFLICT_POLICY_FAIL,
) -> pb.PrepareRunOutcome:
    """prepare_run over the store under test: the engine's own, or, through a client, the PrepareRun RPC."""
    return await store.prepare_run(instance_id, definition_hash, input, first or first_task(), policy)


HOLDER = "holder"
"""The worker holding a run in `hold`."""


async def hold(store: Backend, instance_id: str, task: str = "fetch") -> None:
    """A worker claims a task of the run (no expiry), so a request stored now stays pending for it (SIG-9.1)."""
    assert await store.claim_task(instance_id, task_id(task), HOLDER, None) is not None
