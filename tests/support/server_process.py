"""A real `sayiir-server serve` child process on a free loopback port, for tests that need the whole process."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_LISTENING = re.compile(r"listening on (\S+:\d+)")
_METRICS = re.compile(r"metrics on (http://\S+/metrics)")
_START_TIMEOUT_SECONDS = 20.0
_STOP_TIMEOUT_SECONDS = 15.0


class ServerProcess:
    """A running `sayiir-server serve` subprocess, the address it reported and its log so far."""

    def __init__(self, process: subprocess.Popen[str], address: str, log: list[str]) -> None:
        self.process = process
        self.address = address
        self.log = log

    @property
    def metrics_url(self) -> str | None:
        """The metrics endpoint the server reported (with --metrics-listen), else None."""
        for line in self.log:
            if match := _METRICS.search(line):
                return match.group(1)
        return None

    def log_text(self, last: int = 40) -> str:
        return "".join(self.log[-last:])


@contextmanager
def server_process(
    backend_url: str = "memory://",
    *flags: str,
    command: Sequence[str] = (sys.executable, "-m", "sayiir_server", "serve"),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[ServerProcess]:
    """Start `python -m sayiir_server serve --listen 127.0.0.1:0 ...`, wait for its "listening on" line, stop it.

    `command` replaces `python -m sayiir_server serve` (e.g. another virtualenv's `sayiir-server serve`);
    `env` and `cwd` are the child's (default: this process's).
    """
    arguments = [*command, "--listen", "127.0.0.1:0", "--backend", backend_url, *flags]
    process = subprocess.Popen(
        arguments, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=cwd
    )
    assert process.stderr is not None
    log: list[str] = []
    try:
        address = _wait_for_address(process, process.stderr, log)
        # Keep draining the log so a chatty server never blocks on a full pipe.
        threading.Thread(target=_drain, args=(process.stderr, log), daemon=True).start()
        yield ServerProcess(process, address, log)
    finally:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_address(process: subprocess.Popen[str], stderr: IO[str], log: list[str]) -> str:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    found: list[str] = []

    def read() -> None:
        for line in stderr:
            log.append(line)
            match = _LISTENING.search(line)
            if match:
                found.append(match.group(1))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(max(deadline - time.monotonic(), 0))
    if not found:
        if not reader.is_alive():  # the log ended: the process is exiting, so its exit code is worth waiting for
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        raise RuntimeError(f"sayiir-server did not report its address (exit code {process.poll()}): {''.join(log)}")
    return found[0]


def _drain(stream: IO[str], log: list[str]) -> None:
    for line in stream:
        log.append(line)
