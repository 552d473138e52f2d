"""`sayiir-server serve` with the mesh flags, as a process: JSON logs, SIGHUP reloads, metrics; bad flags exit 2."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.cli import EXIT_OK, EXIT_USAGE, main
from tests.mesh.scrape import Scrape
from tests.mesh.serving import READER_TOKEN, TOKEN_FILE_TEXT, WORKER_TOKEN, bearer, rpc

START_TIMEOUT = 30.0
ROTATED_TOKEN = "rotated-token-0c9e"


class JsonLogServer:
    """A `sayiir-server serve --log-format json` child process; every stderr line is parsed as JSON."""

    def __init__(self, *flags: str) -> None:
        env = {name: value for name, value in os.environ.items() if not name.startswith("SAYIIR_")}
        command = [sys.executable, "-m", "sayiir_server", "serve", "--log-format", "json", *flags]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self.raw_lines: list[str] = []
        self.lines: list[dict[str, Any]] = []
        self._new: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for text in self.process.stderr:
            self.raw_lines.append(text)
            line = json.loads(text)  # a line that is not JSON fails the test (see test below)
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)

    def wait_for(self, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if accept(line):
                return line
        raise AssertionError(f"no such log line; stderr: {self.raw_lines}")

    def wait_for_message(self, fragment: str) -> str:
        message: str = self.wait_for(lambda line: fragment in line["message"])["message"]
        return message

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(TOKEN_FILE_TEXT)
    return path


@pytest.fixture
def server(tokens: Path) -> Iterator[JsonLogServer]:
    flags = ("--listen", "127.0.0.1:0", "--backend", "memory://", "--metrics-listen", "127.0.0.1:0")
    process = JsonLogServer(*flags, "--auth-tokens", str(tokens))
    try:
        yield process
    finally:
        process.close()


def _list_snapshots(address: str, token: str) -> grpc.StatusCode:
    method = rpc("ListSnapshots")
    with grpc.insecure_channel(address) as channel:
        unary = channel.unary_unary(
            method.path,
            request_serializer=rr.ListSnapshotsRequest.SerializeToString,
            response_deserializer=rr.ListSnapshotsResponse.FromString,
        )
        try:
            unary(rr.ListSnapshotsRequest(), metadata=bearer(token), timeout=5)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code
    return grpc.StatusCode.OK


@pytest.mark.slow
def test_serve_logs_json_reloads_tokens_on_sighup_and_serves_metrics(server: JsonLogServer, tokens: Path) -> None:
    metrics_url = server.wait_for_message("metrics on ").split("metrics on ")[1]
    listening = server.wait_for_message("listening on ")
    address = listening.split("listening on ")[1].split(" ")[0]
    assert listening.endswith(", plaintext)")

    assert _list_snapshots(address, WORKER_TOKEN) == grpc.StatusCode.OK
    access = server.wait_for(lambda line: line.get("method", "").endswith("/ListSnapshots"))
    assert access["code"] == "OK"
    assert {"duration_ms", "peer", "time", "level", "logger"} <= set(access)

    tokens.write_text(f"{ROTATED_TOKEN} worker\n")
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_message("token file reloaded: 1 tokens")
    assert _list_snapshots(address, ROTATED_TOKEN) == grpc.StatusCode.OK
    assert _list_snapshots(address, WORKER_TOKEN) == grpc.StatusCode.UNAUTHENTICATED

    tokens.write_text("broken-line\n")
    server.process.send_signal(signal.SIGHUP)
    error = server.wait_for(lambda line: line["level"] == "error")
    assert "keeping the 1 current tokens" in error["message"]
    assert _list_snapshots(address, ROTATED_TOKEN) == grpc.StatusCode.OK

    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        metrics = Scrape(response.read().decode())
    handled = {"grpc_service": "sayiir.persistence.v1.SnapshotStore", "grpc_method": "ListSnapshots"}
    assert metrics.value("grpc_server_handled_total", **handled, grpc_code="OK") == 3
    assert metrics.value("grpc_server_handled_total", **handled, grpc_code="UNAUTHENTICATED") == 1
    assert metrics.value("process_resident_memory_bytes") is not None

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == EXIT_OK
    server.wait_for_message("stopped")
    logged = "".join(server.raw_lines)
    for token in (WORKER_TOKEN, READER_TOKEN, ROTATED_TOKEN, "broken-line"):
        assert token not in logged


def _exit_code(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["serve", "--listen", "127.0.0.1:0", "--backend", "memory://", *argv], environ={})
    return code, capsys.readouterr().err


def test_a_malformed_token_file_stops_the_start_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "tokens"
    bad.write_text("secret-token admin\n")
    code, err = _exit_code(capsys, "--auth-tokens", str(bad))
    assert code == EXIT_USAGE
    assert err == f"sayiir-server: error: {bad}, line 1: unknown role 'admin' (use worker or reader)\n"


def test_a_missing_token_file_stops_the_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _exit_code(capsys, "--auth-tokens", str(tmp_path / "absent"))
    assert code == EXIT_USAGE
    assert "cannot read token file" in err


def test_a_tls_certificate_without_its_key_stops_the_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _exit_code(capsys, "--tls-cert", str(tmp_path / "server.pem"))
    assert code == EXIT_USAGE
    assert "--tls-cert and --tls-key go together" in err


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--log-format", "yaml"),
        ("--metrics-listen", "9090"),
        ("--tracing", "zipkin"),
        ("--max-concurrent-streams", "0"),
        ("--keepalive-min-ping-interval", "-1"),
    ],
)
def test_a_bad_mesh_flag_value_stops_the_start(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _exit_code(capsys, flag, value)
    assert code == EXIT_USAGE
    assert f"invalid {flag} value {value!r}" in err
