"""One `sayiir-server serve` process per backend for the whole module, and `sayiirctl` run as a process against it.

Tests share a server, so each names its instances under its own prefix (`ids`) and filters on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sayiir_client import PersistenceClient
from tests.support.backends import ACTIVE_BACKEND_KINDS
from tests.support.server_process import ServerProcess, server_process

SAYIIRCTL = Path(sys.executable).with_name("sayiirctl")
"""The console script the client distribution installs next to this interpreter."""

_TIMEOUT_SECONDS = 30

CTL_VARIABLES = frozenset(
    f"SAYIIR_{name}" for name in ("SERVER", "TOKEN", "TLS", "CA", "CERT", "KEY", "OUTPUT", "TIMEOUT")
)
"""The variables sayiirctl reads: never inherited from the test's environment."""


@dataclass(frozen=True)
class Run:
    """What one `sayiirctl` process did."""

    code: int
    output: bytes
    """stdout as written."""
    stderr: str

    @property
    def stdout(self) -> str:
        return self.output.decode()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]

    def json(self) -> dict[str, Any]:
        (only,) = self.json_lines()
        return only


def sayiirctl(
    *args: str, server: str | None = None, env: Mapping[str, str] | None = None, stdin: bytes | None = None
) -> Run:
    """Run `sayiirctl ARGS` (SAYIIR_SERVER=server) and check it never printed a traceback."""
    inherited = {name: value for name, value in os.environ.items() if name not in CTL_VARIABLES}
    environment = {**inherited, "TZ": "UTC", **(env or {})}
    if server is not None:
        environment["SAYIIR_SERVER"] = server
    completed = subprocess.run(
        [str(SAYIIRCTL), *args],
        input=stdin,
        capture_output=True,
        env=environment,
        timeout=_TIMEOUT_SECONDS,
        check=False,
    )
    run = Run(completed.returncode, completed.stdout, completed.stderr.decode())
    assert "Traceback" not in run.stderr, run.stderr
    return run


@contextmanager
def _postgres_url() -> Iterator[str]:
    """A fresh schema for the module's server (the helpers are async; this fixture is not)."""
    from tests.support.postgres import temporary_database_url

    schema = temporary_database_url()
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(schema.__aenter__())
    finally:
        loop.run_until_complete(schema.__aexit__(None, None, None))
        loop.close()


@contextmanager
def _backend_url(kind: str, directory: Path) -> Iterator[str]:
    if kind == "postgres":
        with _postgres_url() as url:
            yield url
    elif kind == "sqlite":
        yield f"sqlite:///{directory}/sayiir.db"
    else:
        yield "memory://"


_KIND_MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture(
    scope="module",
    params=[pytest.param(kind, id=kind, marks=_KIND_MARKS.get(kind, [])) for kind in ACTIVE_BACKEND_KINDS],
)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A `serve` process over a fresh backend of each kind, for every test of the module."""
    with _backend_url(request.param, tmp_path_factory.mktemp("ctl")) as url, server_process(url) as serving:
        yield serving


@pytest.fixture
def client(server: ServerProcess) -> Iterator[PersistenceClient]:
    """The typed client, to arrange what sayiirctl then shows."""
    with PersistenceClient(server.address) as connected:
        yield connected


@pytest.fixture
def ids(request: pytest.FixtureRequest) -> str:
    """This test's instance id prefix on the shared server."""
    return f"{request.function.__name__.removeprefix('test_')}/"
