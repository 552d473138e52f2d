"""The SQLite backend: `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`."""

from sayiir_server.backends.sqlite.backend import SqliteBackend
from sayiir_server.backends.sqlite.schema import BackendOpenError

__all__ = ["BackendOpenError", "SqliteBackend"]
