"""The README's Python client snippet runs as written against a real server, so it cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sayiir_client import PersistenceClient
from tests.support.server_process import server_process

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "<!-- section: client -->"
SNIPPET_TARGET = '"localhost:50051"'


def client_snippet() -> str:
    """The first ```python block of the client section."""
    text = README.read_text()
    section = text.split(SECTION, 1)[1].split("<!-- section:", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the client section of README.md has no ```python block"
    return match.group(1)


def test_the_readme_snippet_runs_one_worker_step_to_completion_and_again(capsys: pytest.CaptureFixture[str]) -> None:
    snippet = client_snippet()
    assert SNIPPET_TARGET in snippet, f"the snippet must connect to {SNIPPET_TARGET}; the test swaps in its server"

    with server_process() as server:
        code = compile(snippet.replace(SNIPPET_TARGET, repr(server.address)), str(README), "exec")
        for _ in range(2):  # a second run against the same storage (make serve's sayiir.db) works too
            exec(code, {"__name__": "__main__"})
        with PersistenceClient(server.address) as client:
            snapshot = client.load_snapshot("greeting-1")

    assert snapshot.WhichOneof("state") == "completed"
    assert snapshot.completed.final_output == b"hello, world"
    assert capsys.readouterr().out == "greeting-1 completed\n" * 2
