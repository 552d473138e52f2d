"""The durability settings the README promises: WAL journal, synchronous=FULL, a busy timeout."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sayiir_server.backends.sqlite.schema import BUSY_TIMEOUT_MS, open_database

SYNCHRONOUS_NORMAL = 1
SYNCHRONOUS_FULL = 2


def test_database_uses_the_wal_journal(tmp_path: Path) -> None:
    open_database(str(tmp_path / "sayiir.db")).close()

    with sqlite3.connect(tmp_path / "sayiir.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_commits_are_fsynced_with_synchronous_full(tmp_path: Path) -> None:
    connection = open_database(str(tmp_path / "sayiir.db"))
    try:
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_FULL
    finally:
        connection.close()


def test_synchronous_normal_is_available_on_request(tmp_path: Path) -> None:
    connection = open_database(str(tmp_path / "sayiir.db"), synchronous="normal")
    try:
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_NORMAL
    finally:
        connection.close()


def test_lock_waits_are_bounded_by_the_busy_timeout(tmp_path: Path) -> None:
    connection = open_database(str(tmp_path / "sayiir.db"))
    try:
        assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
    finally:
        connection.close()
