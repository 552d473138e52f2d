"""Python client of the sayiir persistence service, with the generated contract in `sayiir_client.v1`.

`AsyncPersistenceClient` (asyncio) and `PersistenceClient` (blocking) have one
method per RPC, named like the storage traits; failures raise the typed errors
of `sayiir_client.errors`.
"""

from sayiir_client._async_client import AsyncPersistenceClient
from sayiir_client._requests import WorkflowPage
from sayiir_client._sync_client import PersistenceClient
from sayiir_client._wire import ConflictPolicy, ControlSignal, SignalKind, WorkflowOrder, WorkflowState
from sayiir_client.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    BackendError,
    BackendUnavailableError,
    CannotCancelError,
    CannotPauseError,
    ClaimLostError,
    DefinitionMismatchError,
    FinalStateError,
    InvalidArgumentError,
    InvalidInstanceIdError,
    NotFoundError,
    RunBackendFailureError,
    RunConflictError,
    SerializationError,
    ServerUnavailableError,
    TransportError,
)
from sayiir_client.ids import DefinitionHash, TaskId
from sayiir_client.options import DEFAULT_DEADLINE, IDEMPOTENT_METHODS, KeepaliveOptions, RetryOptions
from sayiir_client.tasks import TaskCompletion, advanced_to, completed_with, task_input, whole_task
from sayiir_client.worker import TaskHandler, Worker, WorkerOptions, WorkerStats

__version__ = "0.1.0"
"""This release; the distribution's version (setuptools reads it), the same as sayiir_server.__version__."""

__all__ = [
    "DEFAULT_DEADLINE",
    "IDEMPOTENT_METHODS",
    "AccessDeniedError",
    "AlreadyExistsError",
    "AsyncPersistenceClient",
    "BackendError",
    "BackendUnavailableError",
    "CannotCancelError",
    "CannotPauseError",
    "ClaimLostError",
    "ConflictPolicy",
    "ControlSignal",
    "DefinitionHash",
    "DefinitionMismatchError",
    "FinalStateError",
    "InvalidArgumentError",
    "InvalidInstanceIdError",
    "KeepaliveOptions",
    "NotFoundError",
    "PersistenceClient",
    "RetryOptions",
    "RunBackendFailureError",
    "RunConflictError",
    "SerializationError",
    "ServerUnavailableError",
    "SignalKind",
    "TaskCompletion",
    "TaskHandler",
    "TaskId",
    "TransportError",
    "Worker",
    "WorkerOptions",
    "WorkerStats",
    "WorkflowOrder",
    "WorkflowPage",
    "WorkflowState",
    "advanced_to",
    "completed_with",
    "task_input",
    "whole_task",
]
