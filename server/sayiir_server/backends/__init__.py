"""Storage backends, chosen by URL: memory://, sqlite:///path/to/file.db, postgresql://user@host:port/db.

`open_backend` opens the store a URL names and puts the engine in front of it: what a server serves.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sayiir_server.api.wakeups import WakeupHub
from sayiir_server.backends.credentials import redacted_url
from sayiir_server.domain.engine import Clock, Engine
from sayiir_server.domain.model import utc_now
from sayiir_server.domain.port import StoragePort, WakeupSink

DEFAULT_SQLITE_PATH = "sayiir.db"
"""Database file `sayiir-server serve` uses when no --backend is given (relative to the working directory)."""

DEFAULT_BACKEND_URL = f"sqlite:///{DEFAULT_SQLITE_PATH}"


class BackendUrlError(ValueError):
    """The backend URL names no known backend or is malformed."""


async def open_backend(
    url: str, *, clock: Clock = utc_now, wakeups: WakeupHub | None = None, timer: bool = True
) -> Engine:
    """The engine over the (opened, for SQL stores migrated) store a URL names.

    `clock` is the one clock of every time rule (tests pass a fake one); `wakeups` is the hub the
    store's committed hints reach (a new one by default). With `timer` the engine's due timer runs on the
    calling loop (WAKE-5); tests that need dispatch to advance only in finds turn it off.
    """
    hub = wakeups if wakeups is not None else WakeupHub()
    engine = Engine(await open_store(url, hub.publish), hub, clock)
    if timer:
        engine.start_timer()  # WAKE-5: a replica wakes workers when delays and signal timeouts fall due
    return engine


async def open_store(url: str, deliver: WakeupSink) -> StoragePort:
    """The store a URL names, delivering the hints of committed writes to `deliver`."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from sayiir_server.backends.memory import MemoryStorage

        return MemoryStorage(deliver)
    if scheme == "sqlite":
        from sayiir_server.backends.sqlite import SqliteStore

        return await SqliteStore.open(url, deliver)
    if scheme in ("postgres", "postgresql"):
        from sayiir_server.backends.postgres import PostgresStore

        return await PostgresStore.open(url, deliver)
    raise BackendUrlError(
        f"unsupported backend URL {redacted_url(url)!r}: use memory://, sqlite:///PATH or postgresql://..."
    )
