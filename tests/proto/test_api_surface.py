"""The wire contract names what the Rust traits name (issue: the contract).

The proto/ tree is compiled from source here, so the assertions hold for the
.proto files themselves, not only for the committed generated code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
PACKAGE = "sayiir.persistence.v1"

EXPECTED_RPCS = {
    "SnapshotStore": [
        "SaveSnapshot",
        "SaveTaskResult",
        "LoadSnapshot",
        "DeleteSnapshot",
        "ListSnapshots",
        "ListWorkflows",
    ],
    "SignalStore": [
        "StoreSignal",
        "GetSignal",
        "ClearSignal",
        "SendEvent",
        "ConsumeEvent",
        "CheckAndCancel",
        "CheckAndPause",
        "CheckControlSignals",
        "Unpause",
    ],
    "TaskClaimStore": [
        "ClaimTask",
        "ReleaseTaskClaim",
        "ExtendTaskClaim",
        "FindAvailableTasks",
        "WaitForWakeup",
        "WatchWakeups",
        "FindHintedTask",
        "SaveSnapshotFenced",
        "ClaimAvailableTasks",
        "CompleteTask",
        "CompleteTasks",
    ],
    "TaskResultStore": ["LoadTaskResult"],
    "Lifecycle": ["PrepareRun"],
}

EXPECTED_REQUEST_FIELDS = {
    "SaveSnapshot": {"snapshot"},
    "SaveTaskResult": {"instance_id", "task_id", "output"},
    "LoadSnapshot": {"instance_id"},
    "DeleteSnapshot": {"instance_id"},
    "ListSnapshots": {"page_size", "page_token", "start_after"},
    "ListWorkflows": {
        "states",
        "definition_hash",
        "tag",
        "instance_id_prefix",
        "updated_after",
        "updated_before",
        "order",
        "page_size",
        "page_token",
    },
    "StoreSignal": {"instance_id", "kind", "request"},
    "GetSignal": {"instance_id", "kind"},
    "ClearSignal": {"instance_id", "kind"},
    "SendEvent": {"instance_id", "signal_name", "payload"},
    "ConsumeEvent": {"instance_id", "signal_name"},
    "CheckAndCancel": {"instance_id", "interrupted_at_task"},
    "CheckAndPause": {"instance_id"},
    "CheckControlSignals": {"instance_id", "interrupted_at_task"},
    "Unpause": {"instance_id"},
    "ClaimTask": {"instance_id", "task_id", "worker_id", "ttl"},
    "ReleaseTaskClaim": {"instance_id", "task_id", "worker_id"},
    "ExtendTaskClaim": {"instance_id", "task_id", "worker_id", "ttl"},
    "FindAvailableTasks": {"worker_id", "limit", "aging_interval", "worker_tags"},
    "WaitForWakeup": {"timeout"},
    "WatchWakeups": {"worker_tags"},
    "FindHintedTask": {"hint"},
    "SaveSnapshotFenced": {"snapshot", "task_id", "worker_id"},
    "ClaimAvailableTasks": {
        "worker_id",
        "limit",
        "ttl",
        "aging_interval",
        "worker_tags",
        "definition_hashes",
        "wait",
    },
    "CompleteTask": {"snapshot", "task_id", "worker_id"},
    "CompleteTasks": {"completions"},
    "LoadTaskResult": {"instance_id", "task_id"},
    "PrepareRun": {"instance_id", "definition_hash", "input", "first_task", "conflict_policy"},
}

MAYBE_RESULTS = {
    "ClaimTask": "claim",
    "GetSignal": "request",
    "ConsumeEvent": "payload",
    "LoadTaskResult": "output",
    "WaitForWakeup": "hint",
    "FindHintedTask": "task",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    out = tmp_path_factory.mktemp("descriptors") / "api.binpb"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--descriptor_set_out={out}", *protos],
        check=True,
    )
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return {f.name: f for f in descriptor_set.file}


def _services(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> dict[str, descriptor_pb2.ServiceDescriptorProto]:
    return {s.name: s for f in files.values() for s in f.service}


def _messages(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> dict[str, descriptor_pb2.DescriptorProto]:
    return {f".{f.package}.{m.name}": m for f in files.values() for m in f.message_type}


def test_every_file_is_in_the_versioned_package(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    assert {f.package for f in files.values()} == {PACKAGE}
    assert all(name.startswith("sayiir/persistence/v1/") for name in files)


def test_one_service_per_trait_with_exactly_the_trait_methods(
    files: dict[str, descriptor_pb2.FileDescriptorProto],
) -> None:
    services = _services(files)
    assert set(services) == set(EXPECTED_RPCS)
    for name, rpcs in EXPECTED_RPCS.items():
        assert [m.name for m in services[name].method] == rpcs


def test_each_request_carries_the_trait_parameters(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    messages = _messages(files)
    methods = {m.name: m for s in _services(files).values() for m in s.method}
    for rpc, fields in EXPECTED_REQUEST_FIELDS.items():
        request = messages[methods[rpc].input_type]
        assert request.name == f"{rpc}Request"
        assert fields <= {f.name for f in request.field}, rpc


def test_list_snapshots_is_paged(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    response = _messages(files)[f".{PACKAGE}.ListSnapshotsResponse"]
    assert "next_page_token" in {f.name for f in response.field}


def test_watch_wakeups_is_a_server_stream_and_the_rest_are_unary(
    files: dict[str, descriptor_pb2.FileDescriptorProto],
) -> None:
    for service in _services(files).values():
        for method in service.method:
            assert not method.client_streaming
            assert method.server_streaming == (method.name == "WatchWakeups")


def test_maybe_results_are_optional_fields_of_the_response(
    files: dict[str, descriptor_pb2.FileDescriptorProto],
) -> None:
    messages = _messages(files)
    for rpc, field_name in MAYBE_RESULTS.items():
        field = next(f for f in messages[f".{PACKAGE}.{rpc}Response"].field if f.name == field_name)
        has_presence = field.type == field.TYPE_MESSAGE or field.proto3_optional
        assert has_presence, rpc


def test_enums_and_error_payloads_exist(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    enums = {e.name for f in files.values() for e in f.enum_type}
    assert {"SignalKind", "ConflictPolicy", "ControlSignal", "ErrorReason"} <= enums
    messages = _messages(files)
    conflict = messages[f".{PACKAGE}.RunConflict"]
    assert [o.name for o in conflict.oneof_decl] == ["conflict"]
    assert {f.name for f in conflict.field} == {
        "invalid_instance_id",
        "already_exists",
        "definition_mismatch",
        "backend",
    }
    outcome = messages[f".{PACKAGE}.PrepareRunOutcome"]
    assert {f.name for f in outcome.field} == {"fresh", "existing_status"}


def test_snapshot_state_and_position_are_oneofs(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    messages = _messages(files)
    snapshot = messages[f".{PACKAGE}.WorkflowSnapshot"]
    state_index = [o.name for o in snapshot.oneof_decl].index("state")
    state_fields = {f.name for f in snapshot.field if f.HasField("oneof_index") and f.oneof_index == state_index}
    assert state_fields == {"in_progress", "completed", "failed", "cancelled", "paused"}
    position = messages[f".{PACKAGE}.ExecutionPosition"]
    assert {f.name for f in position.field} == {
        "not_started",
        "at_task",
        "at_fork",
        "at_join",
        "at_delay",
        "at_signal",
        "in_loop",
    }
