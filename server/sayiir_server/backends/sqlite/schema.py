"""Opening a SQLite database file for the backend: identity check, pragmas, versioned migrations.

Migrations are the numbered files in `migrations/` (`0001_initial.sql`, ...),
applied in order at start, each in one transaction, and recorded in
`schema_migrations` (version, name, checksum, applied_at). A released migration
is never edited: its checksum is checked at every start, and a schema change is
a new file.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qsl, urlsplit

from sayiir_client.errors import BackendUnavailableError
from sayiir_server.backends.sqlite import queries
from sayiir_server.backends.stored import decode_snapshot
from sayiir_server.domain.model import utc_now

APPLICATION_ID = 0x53415952
"""PRAGMA application_id of a sayiir database ("SAYR"): tells our files from other applications' ones."""

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for a lock held by another connection before failing."""

SYNCHRONOUS_MODES = ("full", "normal")
"""PRAGMA synchronous values a URL may ask for (`?synchronous=normal`); the first is the default.

full: the WAL is fsynced at every commit, so an acknowledged write survives a process crash and a
power loss or OS crash. normal: no fsync at commit (only at checkpoints), so an acknowledged write
survives a process crash, but the last ones may be lost (never corrupted) on a power loss or OS crash.
"""

MEMORY_PATH = ":memory:"

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class BackendOpenError(BackendUnavailableError):
    """The database cannot be used: not SQLite, another application's, a newer schema, or unreadable.

    Raised only by SqliteBackend.open; the message is one line a CLI can print as is.
    """


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        normalized = self.sql.replace("\r\n", "\n")
        return hashlib.sha256(normalized.encode()).hexdigest()


@dataclass(frozen=True)
class SqliteUrl:
    """What a `sqlite:///PATH[?synchronous=full|normal]` URL asks for."""

    path: str
    synchronous: str = SYNCHRONOUS_MODES[0]


def parse_url(url: str) -> SqliteUrl:
    """`sqlite:///relative.db` and `sqlite:////absolute.db` (`sqlite:///:memory:` too), optionally `?synchronous=`."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise BackendOpenError(f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    synchronous = options.pop("synchronous", SYNCHRONOUS_MODES[0]).lower()
    if options or synchronous not in SYNCHRONOUS_MODES:
        raise BackendOpenError(f"bad SQLite URL {url!r}: the only option is synchronous={'|'.join(SYNCHRONOUS_MODES)}")
    return SqliteUrl(parts.path[1:], synchronous)


def migrations() -> list[Migration]:
    """The packaged migrations, in version order; versions must run 1, 2, 3 ... without gaps."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is not None:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"SQLite migrations must be numbered 1..n without gaps: {[m.version for m in found]}")
    return found


def open_database(path: str, synchronous: str = SYNCHRONOUS_MODES[0]) -> sqlite3.Connection:
    """Connect, check the file is ours (or empty), set the pragmas and apply pending migrations.

    Raises BackendOpenError with a one-line reason; the connection belongs to the calling thread.
    """
    try:
        connection = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as error:
        raise BackendOpenError(f"cannot open SQLite database {path}: {error}{_relative_path_hint(path)}") from error
    try:
        _configure(connection, path, synchronous)
        migrate(connection, path)
        fill_definition_hashes(connection)
    except sqlite3.DatabaseError as error:
        connection.close()
        raise BackendOpenError(f"cannot use {path} as a SQLite database: {error}") from error
    except BaseException:
        connection.close()
        raise
    return connection


def _relative_path_hint(path: str) -> str:
    """`sqlite:///tmp/x.db` names tmp/x.db in the working directory: say so, and how to write /tmp/x.db."""
    if path == MEMORY_PATH or os.path.isabs(path):
        return ""
    return f" ({path} is relative to the working directory {os.getcwd()}; for /{path} write sqlite:////{path})"


def _configure(connection: sqlite3.Connection, path: str, synchronous: str) -> None:
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _check_identity(connection, path)
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if path != MEMORY_PATH and mode != "wal":
        raise BackendOpenError(f"cannot use {path}: SQLite refused WAL journaling (journal_mode is {mode})")
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
    connection.execute(f"PRAGMA synchronous = {synchronous.upper()}")


def _check_identity(connection: sqlite3.Connection, path: str) -> None:
    """Accept an empty database or one stamped with our application_id; refuse anything else."""
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    if application_id == APPLICATION_ID:
        return
    tables = _user_tables(connection)
    if application_id == 0 and not tables:
        return
    listed = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "") or "none"
    raise BackendOpenError(
        f"{path} is a SQLite database of another application (application_id {application_id:#x}, "
        f"tables: {listed}); give sayiir-server its own file"
    )


def _user_tables(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    return [row[0] for row in rows]


def migrate(connection: sqlite3.Connection, path: str) -> list[int]:
    """Apply the migrations not yet recorded, each in one IMMEDIATE transaction; returns the versions applied."""
    known = migrations()
    applied_now = []
    for migration in known:
        connection.execute("BEGIN IMMEDIATE")
        try:
            recorded = _recorded_migrations(connection)
            _refuse_unknown(recorded, known, path)
            if migration.version in recorded:
                _check_unchanged(migration, recorded[migration.version], path)
            else:
                _apply(connection, migration)
                applied_now.append(migration.version)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return applied_now


BACKFILL_BATCH = 1000


def fill_definition_hashes(connection: sqlite3.Connection) -> int:
    """Give rows written before migration 0002 their definition_hash column, a batch per transaction."""
    filled = 0
    while True:
        connection.execute("BEGIN IMMEDIATE")
        try:
            rows = connection.execute(queries.WITHOUT_DEFINITION, {"limit": BACKFILL_BATCH}).fetchall()
            for instance_id, blob in rows:
                params = {"instance_id": instance_id, "definition_hash": decode_snapshot(blob).definition_hash}
                connection.execute(queries.SET_DEFINITION, params)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        filled += len(rows)
        if len(rows) < BACKFILL_BATCH:
            return filled


def _recorded_migrations(connection: sqlite3.Connection) -> dict[int, str]:
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    return dict(connection.execute("SELECT version, checksum FROM schema_migrations").fetchall())


def _refuse_unknown(recorded: dict[int, str], known: list[Migration], path: str) -> None:
    newest = max(recorded, default=0)
    if newest > len(known):
        raise BackendOpenError(
            f"{path} has schema version {newest}, newer than this sayiir-server knows ({len(known)}); upgrade it"
        )


def _check_unchanged(migration: Migration, checksum: str, path: str) -> None:
    if checksum != migration.checksum:
        raise BackendOpenError(
            f"{path}: migration {migration.version:04d}_{migration.name} differs from the one applied; "
            "released migrations must not be edited"
        )


def _apply(connection: sqlite3.Connection, migration: Migration) -> None:
    for statement in _statements(migration.sql):
        connection.execute(statement)
    connection.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
        (migration.version, migration.name, migration.checksum, utc_now().isoformat()),
    )


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (executescript would commit our open transaction)."""
    statements = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise RuntimeError(f"incomplete SQL statement at the end of a migration: {pending.strip()[:80]!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
