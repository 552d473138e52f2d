"""The one error tree of the persistence layer, shared by server and client.

BackendError mirrors the Rust enum of the storage traits, RunConflictError the
one of prepare_run. Server backends raise these (never driver exceptions) and
the server maps them to gRPC statuses in one place; the client decodes the
statuses back into the same classes, from the ErrorInfo reason and the typed
details, never from message text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sayiir_client.v1 import error_details_pb2 as details

if TYPE_CHECKING:
    from grpc import StatusCode


ERROR_DOMAIN = "persistence.sayiir.dev"
"""google.rpc.ErrorInfo.domain of every error status the server sends."""


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


class FinalStateError(BackendError):
    """A save would replace a Completed, Failed or Cancelled run: final states are final, nothing was written.

    `state` names the stored state ("Completed", "Failed", "Cancelled").
    """

    reason = "FINAL_STATE"

    def __init__(self, state: str) -> None:
        super().__init__(f"the workflow is {state}: a final state is never replaced")
        self.state = state


class ClaimLostError(BackendError):
    """Another worker holds the claim."""

    reason = "CLAIM_LOST"


class RunConflictError(Exception):
    """prepare_run refused to start a run; `conflict` is the typed RunConflict detail."""

    reason = "BACKEND"

    def __init__(self, conflict: details.RunConflict, message: str) -> None:
        super().__init__(message)
        self.conflict = conflict

    @staticmethod
    def from_conflict(conflict: details.RunConflict, message: str = "") -> RunConflictError:
        """The RunConflictError subclass for a RunConflict message (as decoded from a status detail)."""
        variant = conflict.WhichOneof("conflict")
        if variant == "invalid_instance_id":
            bad = conflict.invalid_instance_id
            return InvalidInstanceIdError(bad.length, bad.max_length)
        if variant == "already_exists":
            return AlreadyExistsError(conflict.already_exists.instance_id)
        if variant == "definition_mismatch":
            mismatch = conflict.definition_mismatch
            return DefinitionMismatchError(mismatch.expected, mismatch.found)
        return RunBackendFailureError(conflict.backend.message if variant == "backend" else message)


class InvalidInstanceIdError(RunConflictError):
    """The instance id is empty or longer than the maximum (RunConflict::InvalidInstanceId)."""

    reason = "INVALID_INSTANCE_ID"

    def __init__(self, length: int, max_length: int) -> None:
        conflict = details.RunConflict(
            invalid_instance_id=details.InvalidInstanceId(length=length, max_length=max_length)
        )
        problem = "empty" if length == 0 else f"{length} bytes long, the maximum is {max_length}"
        super().__init__(conflict, f"invalid instance id: {problem}")
        self.length = length
        self.max_length = max_length


class AlreadyExistsError(RunConflictError):
    """A run with this instance id exists and the policy is FAIL (RunConflict::AlreadyExists)."""

    reason = "ALREADY_EXISTS"

    def __init__(self, instance_id: str) -> None:
        conflict = details.RunConflict(already_exists=details.AlreadyExists(instance_id=instance_id))
        super().__init__(conflict, f"workflow instance {instance_id!r} already exists")
        self.instance_id = instance_id


class DefinitionMismatchError(RunConflictError):
    """The existing run has another definition hash (RunConflict::DefinitionMismatch)."""

    reason = "DEFINITION_MISMATCH"

    def __init__(self, expected: bytes, found: bytes) -> None:
        conflict = details.RunConflict(definition_mismatch=details.DefinitionMismatch(expected=expected, found=found))
        super().__init__(conflict, f"definition mismatch: expected {expected.hex()}, found {found.hex()}")
        self.expected = expected
        self.found = found


class RunBackendFailureError(RunConflictError):
    """Storage failed while preparing the run (RunConflict::Backend)."""

    reason = "BACKEND"

    def __init__(self, message: str) -> None:
        conflict = details.RunConflict(backend=details.BackendFailure(message=message))
        super().__init__(conflict, f"storage failure: {message}")


class TransportError(BackendError):
    """Client-side: the call failed without an error of this contract (no ErrorInfo reason the client
    knows), e.g. a server bug (INTERNAL), an unimplemented method, or a proxy's refusal.

    `code` is the gRPC status code (a `grpc.StatusCode`); `reason` is the unknown ErrorInfo reason, if any.
    """

    reason = "BACKEND"

    def __init__(self, code: StatusCode, message: str, reason: str = "") -> None:
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        if reason:
            self.reason = reason


class ServerUnavailableError(TransportError, BackendUnavailableError):
    """Client-side: the server could not be reached or did not answer in time (UNAVAILABLE or
    DEADLINE_EXCEEDED with no ErrorInfo).

    A BackendUnavailableError too: to a worker an unreachable server is an unreachable store, so the
    same retry-later handling applies.
    """


class AccessDeniedError(Exception):
    """Client-side: the server refused the caller (UNAUTHENTICATED: missing or unknown token;
    PERMISSION_DENIED: the token's role may not call the method).

    Not a BackendError: a wrong or revoked token is a configuration problem that no retry fixes.
    `code` is the gRPC status code.
    """

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(message or code.name)
        self.code = code


class InvalidArgumentError(ValueError):
    """The server rejected a malformed request field (ErrorInfo reason INVALID_ARGUMENT).

    Client-side only, and deliberately NOT a BackendError: it reports a bug in the caller (a task id
    that is not 32 bytes, an empty worker id, ...), which no storage retry or fallback can fix, so
    code that catches BackendError to ride out storage trouble must not swallow it. It is a ValueError,
    like the error Python raises for a bad argument locally. `field` names the offending field.
    """

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
