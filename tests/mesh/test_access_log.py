"""Structured logs: with --log-format json, one JSON line per call with method, code, duration, peer, instance."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.mesh.access_log import ACCESS_LOGGER, JsonFormatter, log_formatter
from sayiir_server.mesh.mesh import MeshOptions
from tests.mesh.serving import at_task_snapshot, call, rpc, serving, status_code


class _Lines(logging.Handler):
    """Keeps every formatted line."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def access_lines(caplog: pytest.LogCaptureFixture) -> Iterator[_Lines]:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    handler = _Lines(JsonFormatter())
    logging.getLogger(ACCESS_LOGGER).addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(handler)


async def test_json_access_lines_parse_and_carry_method_code_duration_peer_and_instance(
    access_lines: _Lines,
) -> None:
    async with serving(MeshOptions(log_format="json")) as served, grpc.aio.insecure_channel(served.address) as channel:
        await call(channel, rpc("SaveSnapshot"), rr.SaveSnapshotRequest(snapshot=at_task_snapshot("order-7")))
        await status_code(channel, rpc("LoadSnapshot"), rr.LoadSnapshotRequest(instance_id="order-8"))
        await call(channel, rpc("ListSnapshots"))
    saved, missing, listed = (json.loads(line) for line in access_lines.lines)
    assert saved["method"] == "/sayiir.persistence.v1.SnapshotStore/SaveSnapshot"
    assert (saved["code"], saved["instance_id"]) == ("OK", "order-7")
    assert (missing["code"], missing["instance_id"]) == ("NOT_FOUND", "order-8")
    assert listed["method"].endswith("/ListSnapshots")
    assert "instance_id" not in listed  # the request names no instance
    for line in (saved, missing, listed):
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] >= 0
        assert line["peer"].startswith(("ipv4:127.0.0.1:", "ipv6:"))
        assert (line["level"], line["logger"]) == ("info", ACCESS_LOGGER)


async def test_the_instance_of_a_hint_or_snapshot_request_is_logged(access_lines: _Lines) -> None:
    snapshot = at_task_snapshot("order-9")
    request = rr.SaveSnapshotFencedRequest(snapshot=snapshot, task_id=b"\x01" * 32, worker_id="w")
    async with serving(MeshOptions(log_format="json")) as served, grpc.aio.insecure_channel(served.address) as channel:
        await call(channel, rpc("SaveSnapshotFenced"), request)
    (line,) = (json.loads(text) for text in access_lines.lines)
    assert line["instance_id"] == "order-9"


async def test_with_text_logs_access_lines_are_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    async with serving(MeshOptions(log_format="text")) as served, grpc.aio.insecure_channel(served.address) as channel:
        await call(channel, rpc("ListSnapshots"))
    assert not [record for record in caplog.records if record.name == ACCESS_LOGGER]
    # The level in force when the server starts decides: without a reader, calls are not observed at all.
    caplog.set_level(logging.DEBUG, logger=ACCESS_LOGGER)
    async with serving(MeshOptions(log_format="text")) as served, grpc.aio.insecure_channel(served.address) as channel:
        await call(channel, rpc("ListSnapshots"))
    (record,) = [record for record in caplog.records if record.name == ACCESS_LOGGER]
    assert record.levelno == logging.DEBUG
    assert record.getMessage().startswith("/sayiir.persistence.v1.SnapshotStore/ListSnapshots OK ")


def _record(message: str, *args: Any, **fields: Any) -> logging.LogRecord:
    record = logging.LogRecord("sayiir_server.api.server", logging.WARNING, __file__, 1, message, args, None)
    if fields:
        record.fields = fields
    return record


def test_every_json_line_has_time_level_logger_and_message() -> None:
    line = json.loads(JsonFormatter().format(_record("listening on %s", "127.0.0.1:1")))
    assert line["message"] == "listening on 127.0.0.1:1"
    assert (line["level"], line["logger"]) == ("warning", "sayiir_server.api.server")
    assert line["time"].endswith("+00:00")


def test_a_json_line_stays_one_line_with_newlines_and_exceptions() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = _record("failed:\n%s", "details")
        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "failed:\ndetails"
    assert "ValueError: bad" in line["exception"]


def test_the_text_format_is_not_json() -> None:
    text = log_formatter("text").format(_record("hello"))
    assert text.endswith("WARNING sayiir_server.api.server: hello")
