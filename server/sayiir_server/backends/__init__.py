"""Storage backends, chosen by URL: memory://, sqlite:///path/to/file.db, postgresql://user@host:port/db."""

from __future__ import annotations

from urllib.parse import urlsplit

from sayiir_server.store import Backend

DEFAULT_SQLITE_PATH = "sayiir.db"
"""Database file `sayiir-server serve` uses when no --backend is given (relative to the working directory)."""

DEFAULT_BACKEND_URL = f"sqlite:///{DEFAULT_SQLITE_PATH}"


class BackendUrlError(ValueError):
    """The backend URL names no known backend or is malformed."""


async def open_backend(url: str) -> Backend:
    """Open (and for SQL backends, migrate) the backend a URL names."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from sayiir_server.backends.memory import InMemoryBackend

        return InMemoryBackend()
    if scheme == "sqlite":
        from sayiir_server.backends.sqlite import SqliteBackend

        return await SqliteBackend.open(url)
    if scheme in ("postgres", "postgresql"):
        from sayiir_server.backends.postgres import PostgresBackend

        return await PostgresBackend.open(url)
    raise BackendUrlError(f"unsupported backend URL {url!r}: use memory://, sqlite:///PATH or postgresql://...")
