"""The over-the-wire plumbing itself: pytest-grpc's sync channel and stub reach the aio servicers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc
from tests.support.backends import open_test_backend
from tests.support.grpc_wire import BackendSlot, ThreadedAioServer, plugged_blocking


@pytest.fixture(scope="module")
def grpc_stub_cls() -> type[service_pb2_grpc.SnapshotStoreStub]:
    return service_pb2_grpc.SnapshotStoreStub


@pytest.fixture
def memory_backend_served(grpc_server: ThreadedAioServer, grpc_servicer: BackendSlot, tmp_path: Path) -> Iterator[None]:
    with plugged_blocking(grpc_server, grpc_servicer, lambda: open_test_backend("memory", tmp_path)):
        yield


@pytest.mark.usefixtures("memory_backend_served")
def test_load_snapshot_of_a_missing_instance_is_not_found_over_pytest_grpc_sync_stub(
    grpc_stub: service_pb2_grpc.SnapshotStoreStub,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_stub.LoadSnapshot(rr.LoadSnapshotRequest(instance_id="order-missing"))

    error = raised.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(error)
    assert status is not None
    [detail] = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    info = error_details_pb2.ErrorInfo()
    detail.Unpack(info)
    assert info.reason == "NOT_FOUND"
