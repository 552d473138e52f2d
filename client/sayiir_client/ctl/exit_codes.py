"""The error classes of sayiirctl: each its own exit code and one error line, never a traceback."""

from __future__ import annotations

from enum import IntEnum

from sayiir_client.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    BackendUnavailableError,
    CannotCancelError,
    CannotPauseError,
    ClaimLostError,
    DefinitionMismatchError,
    InvalidArgumentError,
    InvalidInstanceIdError,
    NotFoundError,
    RunBackendFailureError,
    ServerUnavailableError,
)


class ExitCode(IntEnum):
    """What a script branches on after `sayiirctl ...`."""

    OK = 0
    FAILURE = 1
    """Anything else: a server bug (INTERNAL), a corrupt stored value."""
    USAGE = 2
    """Bad usage: an unknown flag, a malformed value, a field the server calls invalid, an unreadable file."""
    NOT_FOUND = 3
    """No such workflow instance (or task result)."""
    REFUSED = 4
    """The server refused: the state forbids it (cancel a completed run), the run exists, the token may not."""
    UNAVAILABLE = 5
    """The server cannot be reached or answered too late, or its storage is down: try again later."""


class UsageError(Exception):
    """A value on the command line the command cannot use (bad hex, unreadable file)."""


_CLASSES: tuple[tuple[tuple[type[BaseException], ...], ExitCode, str], ...] = (
    ((UsageError, InvalidArgumentError, InvalidInstanceIdError), ExitCode.USAGE, "bad usage"),
    ((NotFoundError,), ExitCode.NOT_FOUND, "not found"),
    (
        (CannotCancelError, CannotPauseError, AlreadyExistsError, DefinitionMismatchError, ClaimLostError),
        ExitCode.REFUSED,
        "refused",
    ),
    ((AccessDeniedError,), ExitCode.REFUSED, "access denied"),
    # Before the generic failures: ServerUnavailableError is also a TransportError.
    ((ServerUnavailableError,), ExitCode.UNAVAILABLE, "unavailable"),
    ((BackendUnavailableError, RunBackendFailureError), ExitCode.UNAVAILABLE, "storage unavailable"),
)


def classify(error: BaseException) -> tuple[ExitCode, str]:
    """The exit code of a failed command and its error line's prefix ("not found", ...)."""
    for classes, code, label in _CLASSES:
        if isinstance(error, classes):
            return code, label
    return ExitCode.FAILURE, "failed"
