"""The server's one error tree: BackendError (storage traits) and RunConflictError (prepare_run).

Backends raise these, never driver exceptions; `sayiir_server.status` maps them
to gRPC codes in one place.
"""

from __future__ import annotations

from sayiir_client.v1 import error_details_pb2 as details


class BackendError(Exception):
    """Base of the errors a storage trait method can raise (Rust `BackendError`)."""

    reason = "BACKEND"


class NotFoundError(BackendError):
    """No snapshot (or no claim) exists for the key."""

    reason = "NOT_FOUND"


class SerializationError(BackendError):
    """A value could not be encoded or decoded.

    `stored` is True when the bad value came out of storage (a corrupt row),
    False when the client sent it.
    """

    reason = "SERIALIZATION"

    def __init__(self, message: str, *, stored: bool) -> None:
        super().__init__(message)
        self.stored = stored


class BackendUnavailableError(BackendError):
    """The storage failed or cannot be reached (Rust `BackendError::Backend`)."""

    reason = "BACKEND"


class CannotCancelError(BackendError):
    """The instance is in a state that cannot be cancelled."""

    reason = "CANNOT_CANCEL"

    def __init__(self, state: str) -> None:
        super().__init__(f"cannot cancel a workflow in state {state}")
        self.state = state


class CannotPauseError(BackendError):
    """The instance is in a state that cannot be paused (or, for unpause, is not paused)."""

    reason = "CANNOT_PAUSE"

    def __init__(self, state: str, message: str | None = None) -> None:
        super().__init__(message or f"cannot pause a workflow in state {state}")
        self.state = state


class ClaimLostError(BackendError):
    """Another worker holds the claim."""

    reason = "CLAIM_LOST"


class RunConflictError(Exception):
    """prepare_run refused to start a run; `conflict` is the typed RunConflict detail."""

    def __init__(self, conflict: details.RunConflict, message: str) -> None:
        super().__init__(message)
        self.conflict = conflict

    @property
    def reason(self) -> str:
        return {
            "invalid_instance_id": "INVALID_INSTANCE_ID",
            "already_exists": "ALREADY_EXISTS",
            "definition_mismatch": "DEFINITION_MISMATCH",
            "backend": "BACKEND",
        }[self.conflict.WhichOneof("conflict") or "backend"]

    @classmethod
    def invalid_instance_id(cls, length: int, max_length: int) -> RunConflictError:
        conflict = details.RunConflict(
            invalid_instance_id=details.InvalidInstanceId(length=length, max_length=max_length)
        )
        problem = "empty" if length == 0 else f"{length} bytes long, the maximum is {max_length}"
        return cls(conflict, f"invalid instance id: {problem}")

    @classmethod
    def already_exists(cls, instance_id: str) -> RunConflictError:
        conflict = details.RunConflict(already_exists=details.AlreadyExists(instance_id=instance_id))
        return cls(conflict, f"workflow instance {instance_id!r} already exists")

    @classmethod
    def definition_mismatch(cls, expected: bytes, found: bytes) -> RunConflictError:
        conflict = details.RunConflict(definition_mismatch=details.DefinitionMismatch(expected=expected, found=found))
        return cls(conflict, f"definition mismatch: expected {expected.hex()}, found {found.hex()}")

    @classmethod
    def backend(cls, error: BackendError) -> RunConflictError:
        conflict = details.RunConflict(backend=details.BackendFailure(message=str(error)))
        return cls(conflict, f"storage failure: {error}")
