"""The checks, one module per rule area; importing this package registers them all, in this order."""

from sayiir_client.conformance.checks import (
    claims,
    dispatch,
    errors,
    listing,
    model,
    paging,
    runs,
    signals,
    snapshots,
    wakeups,
    worker_path,
)

__all__ = [
    "claims",
    "dispatch",
    "errors",
    "listing",
    "model",
    "paging",
    "runs",
    "signals",
    "snapshots",
    "wakeups",
    "worker_path",
]
