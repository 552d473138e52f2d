"""`sayiir-server serve` without --backend stores in sayiir.db in its working directory, durably."""

from __future__ import annotations

from pathlib import Path

import pytest

from sayiir_server.backends import DEFAULT_BACKEND_URL, DEFAULT_SQLITE_PATH
from tests.contract.builders import at_task
from tests.sqlite.serving import load, save, serving, snapshot_stub


def test_default_backend_is_sqlite_in_the_working_directory() -> None:
    assert DEFAULT_BACKEND_URL == "sqlite:///sayiir.db"
    assert DEFAULT_SQLITE_PATH == "sayiir.db"


async def test_serve_without_backend_persists_to_sayiir_db_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAYIIR_BACKEND", raising=False)
    snapshot = at_task("order-1", priority=1, tags=["gpu"])

    async with serving(cwd=tmp_path) as server, snapshot_stub(server.address) as stub:
        await save(stub, snapshot)
    assert (tmp_path / DEFAULT_SQLITE_PATH).is_file()

    async with serving(cwd=tmp_path) as server, snapshot_stub(server.address) as stub:
        assert await load(stub, "order-1") == snapshot
