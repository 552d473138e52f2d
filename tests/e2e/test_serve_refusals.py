"""`sayiir-server serve` refuses what it cannot honour with exit code 2 and one error line, never half-starting."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence

import pytest

from sayiir_server.api.server import PersistenceServer, ServerOptions
from sayiir_server.backends import BackendUrlError
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.backends.postgres.options import parse_postgres_url
from sayiir_server.cli import EXIT_USAGE, main

MISSING_TRACING_EXTRA = "import sys; sys.modules['opentelemetry'] = None"
"""Run before the CLI in a child process: every opentelemetry import fails, as without the tracing extra."""


def _environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("SAYIIR_")}


def _one_error_line(*argv: str, before: str = "") -> str:
    """The only stderr line of a `serve` process that must exit 2 (`before`: Python run before the CLI)."""
    code = f"{before}\nfrom sayiir_server.cli import main\nraise SystemExit(main())"
    command = [sys.executable, "-c", code, "serve", "--backend", "memory://", *argv]
    finished = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode == EXIT_USAGE, finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith("sayiir-server: error: "), lines[0]
    return lines[0]


def _refused(capsys: pytest.CaptureFixture[str], argv: Sequence[str], environ: dict[str, str]) -> str:
    # A backend that cannot open: a flag wrongly accepted ends the start there rather than serving forever.
    code = main(["serve", "--backend", "bogus://", *argv], environ=environ)
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:99999", "127.0.0.1:-5", "127.0.0.1:+5", "127.0.0.1:５", "127.0.0.1", ":50051", "[]:50051"]
)
def test_a_listen_address_without_a_host_or_a_port_from_0_to_65535_is_refused(
    listen: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"invalid --listen value {listen!r}: expected HOST:PORT" in _refused(capsys, ["--listen", listen], {})


def test_a_bad_listen_address_from_the_environment_is_refused_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _refused(capsys, [], {"SAYIIR_LISTEN": "0.0.0.0:65536"})
    assert "invalid SAYIIR_LISTEN value '0.0.0.0:65536'" in err


async def test_a_busy_listen_address_prints_only_the_error_line_with_the_reason() -> None:
    async with PersistenceServer(InMemoryBackend(), ServerOptions(listen="127.0.0.1:0")) as holder:
        line = await asyncio.to_thread(_one_error_line, "--listen", holder.address)
    assert line == f"sayiir-server: error: cannot listen on {holder.address}: [Errno 98] Address already in use"


def test_a_listen_host_that_does_not_resolve_prints_only_the_error_line() -> None:
    line = _one_error_line("--listen", "no-such-host.invalid:50051")
    assert line.startswith("sayiir-server: error: cannot listen on no-such-host.invalid:50051: ")


def test_tracing_asked_for_without_the_tracing_extra_exits_2_naming_the_extra() -> None:
    line = _one_error_line("--listen", "127.0.0.1:0", "--tracing", "otlp", before=MISSING_TRACING_EXTRA)
    assert "--tracing otlp needs the 'tracing' extra" in line
    assert "pip install 'sayiir-persistence-server[tracing]'" in line


def test_an_unknown_serve_flag_prints_the_usage_of_serve(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--bogus"], environ={})
    assert exited.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("usage: sayiir-server serve ")
    assert "--max-message-bytes" in err
    assert err.strip().splitlines()[-1] == "sayiir-server serve: error: unrecognized arguments: --bogus"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("pool_max=many", "PostgreSQL URL option pool_max='many' is not an integer"),
        ("connect_timeout=soon", "PostgreSQL URL option connect_timeout='soon' is not a number"),
    ],
)
def test_a_non_numeric_postgres_option_is_refused_in_plain_words(query: str, message: str) -> None:
    with pytest.raises(BackendUrlError) as refused:
        parse_postgres_url(f"postgresql://sayiir@db/sayiir?{query}")
    assert str(refused.value) == message
