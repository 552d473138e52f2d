"""A file that is not a sayiir database is refused at start with one clear line, never a traceback."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from sayiir_server.backends import open_backend
from sayiir_server.backends.sqlite import BackendOpenError
from sayiir_server.backends.sqlite.schema import migrations
from tests.sqlite.serving import SERVER_COMMAND


def random_bytes_file(path: Path) -> Path:
    path.write_bytes(os.urandom(8192))
    return path


def foreign_database(path: Path) -> Path:
    """A valid SQLite file of another application (a foreign schema)."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO customers (name) VALUES ('Ada')")
    connection.close()
    return path


async def run_serve(database: Path) -> tuple[int, str]:
    """`sayiir-server serve --backend sqlite:///DATABASE`: its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        *SERVER_COMMAND,
        "--listen",
        "127.0.0.1:0",
        "--backend",
        f"sqlite:///{database}",
        cwd=database.parent,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


def assert_one_line_error(exit_code: int, stderr: str, reason: str) -> None:
    assert exit_code != 0
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert reason in stderr, stderr


async def test_random_bytes_file_is_refused_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    database = random_bytes_file(tmp_path / "noise.db")

    exit_code, stderr = await run_serve(database)

    assert_one_line_error(exit_code, stderr, "file is not a database")


async def test_foreign_sqlite_database_is_refused_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    database = foreign_database(tmp_path / "crm.db")

    exit_code, stderr = await run_serve(database)

    assert_one_line_error(exit_code, stderr, "another application")
    assert "customers" in stderr


async def test_foreign_database_is_left_untouched(tmp_path: Path) -> None:
    database = foreign_database(tmp_path / "crm.db")
    before = database.read_bytes()

    with pytest.raises(BackendOpenError):
        await open_backend(f"sqlite:///{database}")

    assert database.read_bytes() == before


async def test_random_bytes_file_raises_backend_open_error(tmp_path: Path) -> None:
    database = random_bytes_file(tmp_path / "noise.db")

    with pytest.raises(BackendOpenError, match="not a database"):
        await open_backend(f"sqlite:///{database}")


async def test_database_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/newer.db"
    await (await open_backend(url)).close()
    newer = len(migrations()) + 1
    with sqlite3.connect(tmp_path / "newer.db") as connection:
        connection.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, 'future', '', '')",
            (newer,),
        )
    connection.close()

    with pytest.raises(BackendOpenError, match=f"schema version {newer}"):
        await open_backend(url)


async def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendOpenError, match="unable to open database file"):
        await open_backend(f"sqlite:///{tmp_path}/no/such/dir/sayiir.db")


async def test_a_relative_path_that_cannot_be_opened_suggests_the_absolute_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # sqlite:///tmp/x.db is tmp/x.db here, whose directory is missing

    with pytest.raises(BackendOpenError, match="unable to open database file") as refused:
        await open_backend("sqlite:///tmp/x.db")

    assert f"tmp/x.db is relative to the working directory {tmp_path}" in str(refused.value)
    assert "for /tmp/x.db write sqlite:////tmp/x.db" in str(refused.value)


async def test_serve_refuses_a_relative_path_with_one_line_that_suggests_the_absolute_url(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *SERVER_COMMAND,
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "sqlite:///no-such-dir/x.db",
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None

    assert_one_line_error(process.returncode, stderr.decode(), "write sqlite:////no-such-dir/x.db")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/file.db"])
async def test_malformed_url_is_refused(url: str) -> None:
    with pytest.raises(BackendOpenError, match="bad SQLite URL"):
        await open_backend(url)
