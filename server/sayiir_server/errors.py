"""The error tree backends raise; it is shared with the client (see sayiir_client.errors)."""

from sayiir_client.errors import (
    AlreadyExistsError,
    BackendError,
    BackendUnavailableError,
    CannotCancelError,
    CannotPauseError,
    ClaimLostError,
    DefinitionMismatchError,
    InvalidInstanceIdError,
    NotFoundError,
    RunBackendFailureError,
    RunConflictError,
    SerializationError,
)

__all__ = [
    "AlreadyExistsError",
    "BackendError",
    "BackendUnavailableError",
    "CannotCancelError",
    "CannotPauseError",
    "ClaimLostError",
    "DefinitionMismatchError",
    "InvalidInstanceIdError",
    "NotFoundError",
    "RunBackendFailureError",
    "RunConflictError",
    "SerializationError",
]
