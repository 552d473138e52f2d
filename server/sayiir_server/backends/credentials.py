"""Backend URLs as logs and errors may show them: every password masked, wherever it sits in the URL.

A password can sit in the userinfo (`postgresql://user:PASSWORD@host/db`) or in a query parameter
(`?password=...`, `?sslpassword=...`: the libpq names asyncpg reads, matched after percent-decoding as the
driver decodes them). File paths (`passfile`, `sslkey`, `sslcert`) are not secrets and stay visible, so an
operator can tell which file was used.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_plus

MASK: Final = "***"

SECRET_PARAMETERS: Final = frozenset({"password", "sslpassword"})

_KEY_VALUE_SECRET: Final = re.compile(r"(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)")
"""A password in a libpq `key=value` string, given where a URL was expected."""


def redacted_url(url: str) -> str:
    """`url` with the userinfo password and every password parameter replaced by ***."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return _KEY_VALUE_SECRET.sub(rf"\g<1>{MASK}", url)
    user, at = _user_before_password(rest)
    userinfo = ""
    if user is not None:
        userinfo, rest = f"{user}:{MASK}", rest[at:]
    head, question, query = rest.partition("?")
    return f"{scheme}://{userinfo}{head}{question}{_masked_query(query)}"


def _user_before_password(rest: str) -> tuple[str | None, int]:
    """(user, index of the "@" after the password) when the userinfo holds a password, else (None, -1).

    The userinfo ends at the last "@" before the query; a password holding an unencoded "?" moves it later.
    """
    before_query = rest.split("?", 1)[0]
    at = before_query.rfind("@") if "@" in before_query else rest.rfind("@")
    user, colon, _password = rest[: max(at, 0)].partition(":")
    return (user, at) if colon else (None, -1)


def _masked_query(query: str) -> str:
    pairs = []
    for pair in query.split("&") if query else ():
        key, equals, _value = pair.partition("=")
        pairs.append(f"{key}={MASK}" if equals and unquote_plus(key).strip().lower() in SECRET_PARAMETERS else pair)
    return "&".join(pairs)
