"""Page tokens (PAGE-1.3): opaque, signed by the deployment's key, bound to the listing and filters they page.

A token is urlsafe base64 of: a version byte, a 16-byte HMAC-SHA256 tag, and the cursor. The tag covers the
listing's name, a fingerprint of its filters and order, and the cursor, so a token the server did not issue,
one edited by hand, or one used with other filters is refused (INVALID_ARGUMENT) before any storage access.
The key is kept by the store (shared by every replica of a database) and made on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from typing import Final

from sayiir_server.domain.errors import InvalidFieldError
from sayiir_server.domain.listing import ListCursor

_VERSION: Final = b"\x01"
_TAG_BYTES: Final = 16
_NOT_ISSUED: Final = "is not a token this server issued for this listing"


class PageTokens:
    """Issues and reads the page tokens of one deployment."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, listing: str, fingerprint: bytes, cursor: bytes) -> str:
        body = _VERSION + self._tag(listing, fingerprint, cursor) + cursor
        return base64.urlsafe_b64encode(body).decode("ascii")

    def read(self, token: str, listing: str, fingerprint: bytes, field: str = "page_token") -> bytes:
        """The cursor of a token this server issued for `listing` with these filters; InvalidFieldError else."""
        try:
            body = base64.urlsafe_b64decode(token.encode("ascii"))
        except (UnicodeError, binascii.Error, ValueError):
            raise InvalidFieldError(field, _NOT_ISSUED) from None
        if len(body) < 1 + _TAG_BYTES or body[:1] != _VERSION:
            raise InvalidFieldError(field, _NOT_ISSUED)
        tag, cursor = body[1 : 1 + _TAG_BYTES], body[1 + _TAG_BYTES :]
        if not hmac.compare_digest(tag, self._tag(listing, fingerprint, cursor)):
            raise InvalidFieldError(field, _NOT_ISSUED)
        return cursor

    def _tag(self, listing: str, fingerprint: bytes, cursor: bytes) -> bytes:
        message = b"\x00".join((listing.encode(), fingerprint, cursor))
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_TAG_BYTES]


def fingerprint(filters: bytes) -> bytes:
    """A short digest of a request's filters and order (its serialized form without paging fields)."""
    return hashlib.sha256(filters).digest()[:16]


def encode_list_cursor(cursor: ListCursor) -> bytes:
    return struct.pack(">q", cursor.updated_us) + cursor.instance_id.encode()


def decode_list_cursor(raw: bytes) -> ListCursor:
    """The cursor of a verified token (it was issued by us, so it is well formed)."""
    (updated_us,) = struct.unpack(">q", raw[:8])
    return ListCursor(updated_us, raw[8:].decode())
