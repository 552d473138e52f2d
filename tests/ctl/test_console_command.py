"""`sayiirctl console` starts the web console with the console's own flags (issue: the web console)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request

from tests.ctl.conftest import SAYIIRCTL, sayiirctl
from tests.support.server_process import server_process

STARTED_WITHIN = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except (urllib.error.URLError, ConnectionError):
        return None


def test_sayiirctl_console_help_is_the_consoles_own() -> None:
    run = sayiirctl("console", "--help")

    assert run.code == 0
    assert "--listen HOST:PORT" in run.stdout


def test_sayiirctl_console_serves_the_workflows_page() -> None:
    port = _free_port()
    with server_process() as server:
        console = subprocess.Popen(
            [str(SAYIIRCTL), "console", "--listen", f"127.0.0.1:{port}", "--server", server.address],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + STARTED_WITHIN
            status = None
            while status is None and time.monotonic() < deadline and console.poll() is None:
                status = _get(f"http://127.0.0.1:{port}/workflows")
                time.sleep(0.1)
        finally:
            console.terminate()
            console.wait(10)

    assert status == 200
