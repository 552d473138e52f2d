"""CSRF protection of the actions: a signed double-submit token, and the Origin check.

The browser gets a random cookie (HttpOnly, SameSite=Strict); every form carries HMAC(secret, cookie), with a
secret that lives only in this process. Another site can make the browser send the cookie, but it cannot read
the page, so it cannot know the form token. A POST whose Origin header names another site is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeGuard

COOKIE = "sayiir_console_csrf"
FIELD = "csrf"
_COOKIE_BYTES = 32


@dataclass(frozen=True)
class CsrfGuard:
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_hex(_COOKIE_BYTES)

    @staticmethod
    def valid_cookie(cookie: str | None) -> TypeGuard[str]:
        return cookie is not None and len(cookie) == 2 * _COOKIE_BYTES and all(c in "0123456789abcdef" for c in cookie)

    def token(self, cookie: str) -> str:
        """The form token that goes with this cookie."""
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()

    def allows(self, cookie: str | None, token: str, headers: Mapping[str, str], own_origin: str) -> bool:
        """Whether a POST comes from one of the console's own forms."""
        origin = headers.get("origin")
        if origin is not None and origin != own_origin:
            return False
        if not self.valid_cookie(cookie):
            return False
        return hmac.compare_digest(self.token(cookie), token)
