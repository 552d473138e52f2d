"""`sayiirctl console` starts the web console with the console's own flags (issue: the web console)."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.console.conftest import WORKER_TOKEN, console_process
from tests.ctl.conftest import SAYIIRCTL, sayiirctl
from tests.support.server_process import ServerProcess


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


def test_sayiirctl_console_serves_the_workflows_page(server: ServerProcess) -> None:
    with console_process(server.address, WORKER_TOKEN, program=(str(SAYIIRCTL), "console")) as console:
        status = _get(f"{console.url}/workflows")

    assert status == 200
