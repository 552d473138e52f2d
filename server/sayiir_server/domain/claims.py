"""Claim rules: when a lease is live, what a new one looks like, and the errors of a claim held elsewhere."""

from __future__ import annotations

from datetime import datetime, timedelta

from sayiir_client.errors import BackendError, ClaimLostError, NotFoundError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import timestamp, to_datetime


def is_live(claim: pb.TaskClaim, now: datetime) -> bool:
    """CLAIM-LIVE: a claim without expiry never expires; one with an expiry is expired from expires_at on."""
    return not claim.HasField("expires_at") or now < to_datetime(claim.expires_at)


def new_claim(instance_id: str, task_id: bytes, worker_id: str, now: datetime, ttl: timedelta | None) -> pb.TaskClaim:
    """A claim taken at `now`: expires at now + ttl, or never without a ttl."""
    claim = pb.TaskClaim(instance_id=instance_id, task_id=task_id, worker_id=worker_id, claimed_at=timestamp(now))
    if ttl is not None:
        claim.expires_at.CopyFrom(timestamp(now + ttl))
    return claim


def claim_error(instance_id: str, task_id: bytes, holder: str | None) -> BackendError:
    """NotFoundError when nobody holds the claim, ClaimLostError when another worker does."""
    if holder is None:
        return NotFoundError(f"no claim on task {task_id.hex()} of workflow instance {instance_id!r}")
    return ClaimLostError(f"task {task_id.hex()} of workflow instance {instance_id!r} is claimed by worker {holder!r}")
