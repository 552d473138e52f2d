"""sayiirctl's failures without a backend to vary: bad usage, an unreachable server, tokens, TLS, colour."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sayiir_client.ctl.exit_codes import ExitCode
from tests.ctl.conftest import SAYIIRCTL, sayiirctl
from tests.mesh.certificates import Pki
from tests.support.server_process import ServerProcess, server_process

READER_TOKEN = "reader-token-0123456789"


@pytest.mark.parametrize(
    "args",
    [
        ("workflow", "list", "--state", "running"),
        ("workflow", "list", "--limit", "0"),
        ("workflow", "frobnicate"),
        ("run", "start", "order-1", "--first-task", "fetch"),
        ("event", "send", "order-1", "go", "--payload", "a", "--payload-file", "b"),
    ],
    ids=["unknown state", "limit 0", "unknown command", "missing flag", "two payloads"],
)
def test_bad_usage_is_one_error_line_and_exit_code_2(args: tuple[str, ...]) -> None:
    run = sayiirctl(*args, server="127.0.0.1:1")

    assert run.code == 2  # ExitCode.USAGE
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert "error:" in run.stderr


def test_a_command_group_alone_prints_its_help_and_exits_with_the_usage_code() -> None:
    run = sayiirctl("workflow")

    assert run.code == ExitCode.USAGE
    assert "cancel" in run.stderr


def test_an_unreadable_file_is_bad_usage(tmp_path: Path) -> None:
    run = sayiirctl("event", "send", "order-1", "go", "--payload-file", str(tmp_path / "absent"), server="127.0.0.1:1")

    assert (run.code, run.stderr.count("\n")) == (ExitCode.USAGE, 1)
    assert "cannot read" in run.stderr


def test_an_unreachable_server_is_unavailable_exit_code_5() -> None:
    run = sayiirctl("workflow", "list", "--timeout", "2", server="127.0.0.1:1")

    assert run.code == 5  # ExitCode.UNAVAILABLE
    assert run.stderr.startswith("sayiirctl: unavailable: ")
    assert run.stderr.endswith("(server 127.0.0.1:1)\n")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{READER_TOKEN} reader\n")
    with server_process("memory://", "--auth-tokens", str(tokens)) as serving:
        yield serving


def test_a_reader_token_may_list_but_not_cancel(guarded: ServerProcess) -> None:
    listing = sayiirctl("workflow", "list", server=guarded.address, env={"SAYIIR_TOKEN": READER_TOKEN})
    cancel = sayiirctl("workflow", "cancel", "order-1", "--token", READER_TOKEN, server=guarded.address)
    anonymous = sayiirctl("workflow", "list", server=guarded.address)

    assert listing.code == ExitCode.OK
    assert cancel.code == ExitCode.REFUSED
    assert cancel.stderr.startswith("sayiirctl: access denied: ")
    assert anonymous.code == ExitCode.REFUSED


def test_tls_with_the_servers_ca(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path)
    with server_process("memory://", "--tls-cert", pki.server_cert_file, "--tls-key", pki.server_key_file) as tls:
        trusted = sayiirctl("workflow", "list", "--ca", pki.ca_file, server=tls.address)
        plaintext = sayiirctl("workflow", "list", "--timeout", "2", server=tls.address)

    assert trusted.code == ExitCode.OK, trusted.stderr
    assert plaintext.code == ExitCode.UNAVAILABLE


def test_colour_only_on_a_terminal(guarded: ServerProcess) -> None:
    controller, terminal = pty.openpty()
    environment = {**os.environ, "SAYIIR_SERVER": guarded.address, "SAYIIR_TOKEN": READER_TOKEN}
    environment.pop("NO_COLOR", None)
    try:
        completed = subprocess.run(
            [str(SAYIIRCTL), "workflow", "list"], stdout=terminal, env=environment, timeout=30, check=False
        )
        shown = os.read(controller, 65536).decode()
    finally:
        os.close(controller)
        os.close(terminal)

    assert completed.returncode == 0
    assert "\x1b[1mINSTANCE" in shown
