"""32-byte identifiers of the data model (docs/behaviour.md ID): task ids and definition hashes.

Both are `bytes` subclasses, so they go wherever the API takes `bytes` (the
client's methods, the server's storage Protocols, protobuf fields) while
guaranteeing the length and reading well in logs and reprs.
"""

from __future__ import annotations

import hashlib
from typing import Self

ID_BYTES = 32
"""Length in bytes of a task id or definition hash."""


class _Id32(bytes):
    """Exactly 32 bytes, compared and hashed as bytes, shown as hex."""

    __slots__ = ()

    def __new__(cls, value: bytes) -> Self:
        if len(value) != ID_BYTES:
            raise ValueError(f"{cls.__name__} must be {ID_BYTES} bytes, got {len(value)}")
        return super().__new__(cls, value)

    @classmethod
    def from_name(cls, name: str) -> Self:
        """SHA-256 of the UTF-8 name: the conventional id of a task or workflow definition."""
        return cls(hashlib.sha256(name.encode()).digest())

    @classmethod
    def from_hex(cls, text: str) -> Self:
        """Parse 64 hex digits (as produced by `.hex()`)."""
        return cls(bytes.fromhex(text))

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.hex()[:8]}…')"

    def __str__(self) -> str:
        return self.hex()


class TaskId(_Id32):
    """A task id: 32 bytes, by convention SHA-256 of the task's name (`TaskId.from_name("charge-card")`)."""

    __slots__ = ()


class DefinitionHash(_Id32):
    """SHA-256 identifying the shape of a workflow definition."""

    __slots__ = ()
