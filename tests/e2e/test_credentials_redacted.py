"""No password of the backend URL reaches the start-up error line, the log, or the metrics of a server process."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.mesh.scrape import scrape
from tests.support.postgres import temporary_database_url
from tests.support.server_process import server_process

SECRET = "hunter2-secret"
UNREACHABLE = "127.0.0.1:1"
"""Nothing listens on port 1: the backend cannot be opened, so the server prints its start-up error line."""


def _environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("SAYIIR_")}


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://sayiir@{UNREACHABLE}/app?password={SECRET}",
        f"postgresql://sayiir:{SECRET}@{UNREACHABLE}/app",
        f"postgresql://sayiir@{UNREACHABLE}/app?sslpassword={SECRET}&sslmode=disable",
        f"postgresql://sayiir:{SECRET}/x@{UNREACHABLE}/app",
        f"postgres+bogus://sayiir:{SECRET}@{UNREACHABLE}/app?password={SECRET}",
    ],
)
def test_the_start_up_error_line_masks_every_password_of_the_backend_url(url: str) -> None:
    command = [sys.executable, "-m", "sayiir_server", "serve", "--listen", "127.0.0.1:0", "--backend", url]
    finished = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode == 2, finished.stderr
    (line,) = finished.stderr.strip().splitlines()
    assert line.startswith("sayiir-server: error: cannot open backend "), line
    assert SECRET not in line
    assert "***" in line


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), ("password", SECRET)])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@pytest.mark.postgres
async def test_a_served_postgres_url_shows_its_password_in_no_log_line_and_no_metric() -> None:
    # The test server trusts every connection, so the password is sent but never checked.
    async with temporary_database_url() as url:
        flags = ("--metrics-listen", "127.0.0.1:0", "--log-level", "debug", "--log-format", "json")
        with server_process(_with_password(url), *flags, env=_environment()) as server:
            assert server.metrics_url is not None
            metrics = await scrape(server.metrics_url)
        log = server.log_text(last=1000)
    assert "listening on" in log
    assert SECRET not in log
    assert SECRET not in metrics.text
