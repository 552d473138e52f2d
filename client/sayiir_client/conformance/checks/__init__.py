"""The checks, one module per rule area; importing this package registers them all, in this order."""

from sayiir_client.conformance.checks import (
    claims,
    dispatch,
    errors,
    paging,
    runs,
    signals,
    snapshots,
    wakeups,
)

__all__ = ["claims", "dispatch", "errors", "paging", "runs", "signals", "snapshots", "wakeups"]
