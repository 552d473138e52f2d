"""The SQLite store: `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`."""

from sayiir_server.backends.sqlite.backend import SqliteStore
from sayiir_server.backends.sqlite.schema import BackendOpenError

__all__ = ["BackendOpenError", "SqliteStore"]
