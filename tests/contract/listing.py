"""ListWorkflows in contract tests: the one place that says how a listing reaches the store under test.

Through a client it is the RPC. In process there is no servicer, so the request goes through the server's
own request checks (`validation.workflow_filter`, `validation.page_size`) to `Engine.list_workflows`, and
the page token is the cursor itself (the signed tokens are the servicer's: tested over gRPC only).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sayiir_client import AsyncPersistenceClient, WorkflowOrder, WorkflowPage, WorkflowState
from sayiir_client._requests import workflow_filters
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.api import validation
from sayiir_server.api.page_tokens import decode_list_cursor, encode_list_cursor
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.traits import Backend


async def list_page(
    store: Backend,
    *,
    states: Sequence[WorkflowState] = (),
    definition_hash: bytes | None = None,
    tag: str | None = None,
    prefix: str = "",
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    order: WorkflowOrder = enums.WORKFLOW_ORDER_NEWEST_FIRST,
    page_size: int = 100,
    page_token: str = "",
) -> WorkflowPage:
    """One page of ListWorkflows over the store under test."""
    if isinstance(store, AsyncPersistenceClient):
        return await store.list_workflows(
            states=states,
            definition_hash=definition_hash,
            tag=tag,
            prefix=prefix,
            updated_after=updated_after,
            updated_before=updated_before,
            order=order,
            page_size=page_size,
            page_token=page_token,
        )
    assert isinstance(store, Engine)
    request = workflow_filters(states, definition_hash, tag, prefix, updated_after, updated_before, order)
    wanted = validation.workflow_filter(request)
    after = decode_list_cursor(base64.urlsafe_b64decode(page_token)) if page_token else None
    summaries, following = await store.list_workflows(wanted, after, validation.page_size(page_size))
    token = base64.urlsafe_b64encode(encode_list_cursor(following)).decode() if following is not None else ""
    return WorkflowPage(summaries, token)


async def listed_ids(store: Backend, **filters: Any) -> list[str]:
    """The instance ids of every page of a listing, in order."""
    return [summary.instance_id for summary in await list_all(store, **filters)]


async def list_all(store: Backend, *, page_size: int = 100, **filters: Any) -> list[pb.WorkflowSummary]:
    """Every summary of a listing, page by page."""
    summaries: list[pb.WorkflowSummary] = []
    token = ""
    while True:
        page = await list_page(store, page_size=page_size, page_token=token, **filters)
        summaries.extend(page.workflows)
        if not page.next_page_token:
            return summaries
        token = page.next_page_token
