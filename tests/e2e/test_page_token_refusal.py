"""PAGE-1.3 end to end: every backend refuses a page token the server did not issue, the same way, with no
storage detail in the answer."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.api.page_tokens import PageTokens, encode_list_cursor
from sayiir_server.domain.listing import ListCursor
from tests.e2e.every_backend import Served, serving
from tests.e2e.wire import details, google_status
from tests.support.backends import ACTIVE_BACKEND_KINDS

OTHER_DEPLOYMENT = PageTokens(os.urandom(32))
FOREIGN_TOKENS = {
    "never issued": base64.urlsafe_b64encode(b"order-1").decode(),
    "a NUL b": base64.urlsafe_b64encode(b"a\x00b").decode(),
    "not base64": "%%%",
    "another deployment's ListSnapshots": OTHER_DEPLOYMENT.issue("ListSnapshots", b"", b"order-1"),
    "another deployment's ListWorkflows": OTHER_DEPLOYMENT.issue(
        "ListWorkflows", b"", encode_list_cursor(ListCursor(0, "order-1"))
    ),
}
LISTINGS = {"ListSnapshots": rr.ListSnapshotsRequest, "ListWorkflows": rr.ListWorkflowsRequest}


async def _refusal(served: Served, listing: str, token: str) -> tuple[grpc.StatusCode, str, str]:
    request: Message = LISTINGS[listing](page_token=token)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.rpc[f"SnapshotStore.{listing}"](request, timeout=10)
    (bad_request,) = details(google_status(refused.value), error_details_pb2.BadRequest)
    (violation,) = bad_request.field_violations
    return refused.value.code(), str(refused.value.details()), violation.field


@pytest.mark.postgres
@pytest.mark.parametrize("listing", LISTINGS)
@pytest.mark.parametrize("token", FOREIGN_TOKENS.values(), ids=FOREIGN_TOKENS.keys())
async def test_a_page_token_the_server_did_not_issue_is_refused_alike_on_every_backend(
    listing: str, token: str, tmp_path: Path
) -> None:
    async with serving(ACTIVE_BACKEND_KINDS, tmp_path) as every:
        answers = {kind: await _refusal(served, listing, token) for kind, served in every.items()}

    code, message, field = answers["memory"]
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    assert message == "invalid page_token: is not a token this server issued for this listing"
    assert set(answers.values()) == {answers["memory"]}, answers
