"""Errors of requests the domain refuses, beside the shared error tree (sayiir_client.errors)."""

from __future__ import annotations


class InvalidFieldError(Exception):
    """A request field is malformed: INVALID_ARGUMENT with ErrorInfo reason INVALID_ARGUMENT and metadata "field"."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"invalid {field}: {description}")
        self.field = field
        self.description = description
