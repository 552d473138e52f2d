"""The PostgreSQL backend URL: postgresql://user[:password]@host:port/db?pool_min=1&pool_max=10&...

Our own options are taken out of the query string; whatever remains (sslmode, ...)
goes to the driver untouched.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sayiir_server.backends import BackendUrlError
from sayiir_server.backends.credentials import redacted_url


@dataclass(frozen=True)
class PostgresOptions:
    """Connection pool and timeout settings, each settable as a URL query parameter of the same name."""

    pool_min: int = 1
    """Connections opened at start and kept open."""

    pool_max: int = 10
    """Most connections the pool opens (the LISTEN connection comes on top)."""

    connect_timeout: float = 5.0
    """Seconds to establish one connection; bounds how long a call waits while the database is unreachable."""

    command_timeout: float = 10.0
    """Seconds one SQL statement may run before the call fails with UNAVAILABLE."""

    acquire_timeout: float = 10.0
    """Seconds a call waits for a free pool connection (connecting included) before it fails with UNAVAILABLE."""

    idle_timeout: float = 300.0
    """Seconds an idle connection above pool_min stays open."""

    schema: str | None = None
    """Schema holding the tables (created if missing); None uses the connection's default (public).
    Deployments sharing a database in separate schemas are isolated, wakeups included."""


@dataclass(frozen=True)
class PostgresUrl:
    """A backend URL split into what the driver connects to and what the backend tunes."""

    dsn: str
    """The URL without our options: what asyncpg connects to."""

    description: str
    """The URL without password or options, safe for logs."""

    options: PostgresOptions


def parse_postgres_url(url: str) -> PostgresUrl:
    """Split a postgresql:// URL; BackendUrlError when an option is unknown to us and malformed."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # urllib's message may quote a piece of a password holding an unencoded "/"
        raise BackendUrlError(
            f"malformed PostgreSQL URL {redacted_url(url)!r}: bad host or port "
            "(percent-encode ':', '/', '?', '#' and '@' in the user name and password)"
        ) from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise BackendUrlError(f"not a PostgreSQL URL: {redacted_url(url)!r}")
    fields = {field.name: field for field in dataclasses.fields(PostgresOptions)}
    ours: dict[str, int | float | str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in fields:
            theirs.append((name, value))
        elif name == "schema":
            ours[name] = _parse_schema(value)
        else:
            ours[name] = _parse_number(name, value, int if fields[name].type in (int, "int") else float)
    options = PostgresOptions(**ours)  # type: ignore[arg-type]
    _check(options)
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(theirs), ""))
    host = parts.hostname or "localhost"
    user = f"{parts.username}@" if parts.username else ""
    schema = f"?schema={options.schema}" if options.schema is not None else ""
    description = f"postgresql://{user}{host}{port}{parts.path}{schema}"
    return PostgresUrl(dsn=dsn, description=description, options=options)


_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


def _parse_schema(value: str) -> str:
    # Plain lower-case identifiers only: they need no quoting and keep the NOTIFY channel under 64 bytes.
    if not _SCHEMA_NAME.match(value):
        raise BackendUrlError(f"PostgreSQL URL option schema={value!r}: use 1 to 40 of a-z, 0-9, _ (not first digit)")
    return value


_KIND_NAMES: dict[type, str] = {int: "an integer", float: "a number"}


def _parse_number(name: str, value: str, kind: type[int] | type[float]) -> int | float:
    try:
        number = kind(value)
    except ValueError:
        raise BackendUrlError(f"PostgreSQL URL option {name}={value!r} is not {_KIND_NAMES[kind]}") from None
    if number < 0:
        raise BackendUrlError(f"PostgreSQL URL option {name}={value!r} must not be negative")
    return number


def _check(options: PostgresOptions) -> None:
    if options.pool_max < 1:
        raise BackendUrlError("PostgreSQL URL option pool_max must be at least 1")
    if options.pool_min > options.pool_max:
        raise BackendUrlError(f"pool_min={options.pool_min} exceeds pool_max={options.pool_max}")
    for name in ("connect_timeout", "command_timeout", "acquire_timeout"):
        if getattr(options, name) <= 0:
            raise BackendUrlError(f"PostgreSQL URL option {name} must be positive")
