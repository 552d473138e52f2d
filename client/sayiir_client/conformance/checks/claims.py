"""CLAIM: task claims, their expiry (short real TTLs) and fenced saves."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import Trial, check
from sayiir_client.conformance._steps import claim, load, save, within_slack
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr

SHORT_TTL = timedelta(milliseconds=250)
"""A lease that lapses within the check; the check then waits LAPSE for it to be over for sure."""
LAPSE = timedelta(milliseconds=450)
LONG_TTL = timedelta(hours=1)
TASK = build.task_id("step")


async def _sleep(span: timedelta) -> None:
    await asyncio.sleep(span.total_seconds())


def _release(instance_id: str, worker_id: str, task: bytes = TASK) -> rr.ReleaseTaskClaimRequest:
    return rr.ReleaseTaskClaimRequest(instance_id=instance_id, task_id=task, worker_id=worker_id)


def _extend(instance_id: str, worker_id: str, ttl: timedelta) -> rr.ExtendTaskClaimRequest:
    return rr.ExtendTaskClaimRequest(
        instance_id=instance_id, task_id=TASK, worker_id=worker_id, ttl=build.duration(ttl)
    )


def _fenced(snapshot: pb.WorkflowSnapshot, worker_id: str, task: bytes = TASK) -> rr.SaveSnapshotFencedRequest:
    return rr.SaveSnapshotFencedRequest(snapshot=snapshot, task_id=task, worker_id=worker_id)


@check("CLAIM-1.1", "ClaimTask returns the claim with claimed_at = now and expires_at = now + ttl")
async def _claim_with_ttl(t: Trial) -> None:
    instance_id, worker_id = t.instance(), t.worker()
    before = build.now()
    answer = await claim(t, instance_id, TASK, worker_id, timedelta(seconds=30))
    after = build.now()
    got = answer.claim
    t.expect(
        answer.HasField("claim") and (got.instance_id, got.task_id, got.worker_id) == (instance_id, TASK, worker_id),
        "a claim {instance_id, task_id, worker_id} as asked",
    )
    t.expect(within_slack(t, got.claimed_at, before, after), "claimed_at = the server's now")
    lease = build.moment(got.expires_at) - build.moment(got.claimed_at)
    t.expect(
        got.HasField("expires_at") and abs(lease - timedelta(seconds=30)) <= timedelta(milliseconds=1),
        "expires_at = claimed_at + ttl (30 s)",
    )


@check("CLAIM-1.1", "ClaimTask without a ttl gives a claim without expires_at")
async def _claim_without_ttl(t: Trial) -> None:
    answer = await claim(t, t.instance(), TASK, t.worker())
    t.expect(answer.HasField("claim") and not answer.claim.HasField("expires_at"), "a claim without expires_at")


@check("CLAIM-1.2", "while a live claim exists, nobody gets another: not its holder, not another worker")
async def _live_claim_blocks(t: Trial) -> None:
    for ttl in (LONG_TTL, None):
        instance_id, holder = t.instance(), t.worker()
        await claim(t, instance_id, TASK, holder, ttl)
        for asker in (holder, t.worker()):
            t.expect(not (await claim(t, instance_id, TASK, asker, ttl)).HasField("claim"), "no claim in the answer")


@check("CLAIM-1.3", "an expired claim is replaced by a new one")
async def _expired_claim_replaced(t: Trial) -> None:
    instance_id = t.instance()
    await claim(t, instance_id, TASK, t.worker(), SHORT_TTL)
    await _sleep(LAPSE)
    t.expect((await claim(t, instance_id, TASK, t.worker(), LONG_TTL)).HasField("claim"), "a new claim")
    zero = t.instance()
    await claim(t, zero, TASK, t.worker(), timedelta(0))
    t.expect(
        (await claim(t, zero, TASK, t.worker(), LONG_TTL)).HasField("claim"),
        "a new claim at once: a ttl of 0 is expired at once (MODEL-1.4)",
    )


@check("CLAIM-1.4", "claims are keyed by (instance, task) only: no snapshot needed, other tasks independent")
async def _claims_keyed_by_instance_and_task(t: Trial) -> None:
    instance_id, worker_id = t.instance(), t.worker()
    t.expect((await claim(t, instance_id, TASK, worker_id, LONG_TTL)).HasField("claim"), "a claim without a snapshot")
    other = build.task_id("other step")
    t.expect((await claim(t, instance_id, other, t.worker(), LONG_TTL)).HasField("claim"), "a claim on another task")


@check("CLAIM-1.5", "of 8 concurrent ClaimTask calls on one key exactly one gets the claim")
async def _concurrent_claims(t: Trial) -> None:
    instance_id = t.instance()
    answers = await asyncio.gather(*(claim(t, instance_id, TASK, t.worker(), LONG_TTL) for _ in range(8)))
    won = [answer for answer in answers if answer.HasField("claim")]
    t.expect(len(won) == 1, f"exactly one claim (got {len(won)})")


@check("CLAIM-2.1", "ReleaseTaskClaim by the holder frees the key for anyone")
async def _release_frees(t: Trial) -> None:
    instance_id, holder = t.instance(), t.worker()
    await claim(t, instance_id, TASK, holder, LONG_TTL)
    await t.ok(t.stubs.claims.ReleaseTaskClaim, _release(instance_id, holder))
    t.expect((await claim(t, instance_id, TASK, t.worker(), LONG_TTL)).HasField("claim"), "a claim for another worker")


@check("CLAIM-2.2", "ReleaseTaskClaim without a claim is NOT_FOUND")
async def _release_not_found(t: Trial) -> None:
    request = _release(t.instance(), t.worker())
    await t.refused(t.stubs.claims.ReleaseTaskClaim, request, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


@check("CLAIM-2.3", "ReleaseTaskClaim of another worker's claim is ABORTED CLAIM_LOST and the claim stays")
async def _release_of_another(t: Trial) -> None:
    instance_id = t.instance()
    await claim(t, instance_id, TASK, t.worker(), LONG_TTL)
    request = _release(instance_id, t.worker())
    await t.refused(t.stubs.claims.ReleaseTaskClaim, request, grpc.StatusCode.ABORTED, "CLAIM_LOST")
    t.expect(not (await claim(t, instance_id, TASK, t.worker(), LONG_TTL)).HasField("claim"), "the claim stays")


@check("CLAIM-3.1", "ExtendTaskClaim sets expires_at = now + ttl and can shorten the lease")
async def _extend_shortens(t: Trial) -> None:
    instance_id, holder = t.instance(), t.worker()
    await claim(t, instance_id, TASK, holder, LONG_TTL)
    await t.ok(t.stubs.claims.ExtendTaskClaim, _extend(instance_id, holder, SHORT_TTL))
    await _sleep(LAPSE)
    t.expect(
        (await claim(t, instance_id, TASK, t.worker(), LONG_TTL)).HasField("claim"),
        "a new claim: the extended lease (250 ms from the extend, not added to the hour) lapsed",
    )


@check("CLAIM-3.1", "ExtendTaskClaim keeps a short lease live past its first expiry")
async def _extend_lengthens(t: Trial) -> None:
    instance_id, holder = t.instance(), t.worker()
    await claim(t, instance_id, TASK, holder, timedelta(milliseconds=600))
    await t.ok(t.stubs.claims.ExtendTaskClaim, _extend(instance_id, holder, LONG_TTL))
    await _sleep(timedelta(milliseconds=800))
    t.expect(not (await claim(t, instance_id, TASK, t.worker(), LONG_TTL)).HasField("claim"), "still held: no claim")


@check("CLAIM-3.2", "ExtendTaskClaim of a claim without expiry keeps none")
async def _extend_keeps_no_expiry(t: Trial) -> None:
    instance_id, holder = t.instance(), t.worker()
    await claim(t, instance_id, TASK, holder)
    await t.ok(t.stubs.claims.ExtendTaskClaim, _extend(instance_id, holder, timedelta(milliseconds=50)))
    await _sleep(timedelta(milliseconds=200))
    t.expect(not (await claim(t, instance_id, TASK, t.worker())).HasField("claim"), "still held: no claim")


@check("CLAIM-3.3", "ExtendTaskClaim without a claim is NOT_FOUND; of another's claim ABORTED CLAIM_LOST")
async def _extend_refused(t: Trial) -> None:
    request = _extend(t.instance(), t.worker(), LONG_TTL)
    await t.refused(t.stubs.claims.ExtendTaskClaim, request, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    instance_id = t.instance()
    await claim(t, instance_id, TASK, t.worker(), SHORT_TTL)
    request = _extend(instance_id, t.worker(), LONG_TTL)
    await t.refused(t.stubs.claims.ExtendTaskClaim, request, grpc.StatusCode.ABORTED, "CLAIM_LOST")
    await _sleep(LAPSE)
    t.expect((await claim(t, instance_id, TASK, t.worker())).HasField("claim"), "the claim was unchanged (it lapsed)")


@check("CLAIM-5.1", "SaveSnapshotFenced by the holder of a live claim saves and answers saved = true")
async def _fenced_save_saves(t: Trial) -> None:
    instance_id, holder = t.instance(), t.worker()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("step")))
    await claim(t, instance_id, TASK, holder, LONG_TTL)
    after = build.in_progress(instance_id, t.definition, build.at_task("next"), outputs={"step": b"out"})
    answer = await t.ok(t.stubs.claims.SaveSnapshotFenced, _fenced(after, holder))
    t.expect(answer.saved, "saved = true")
    t.expect(await load(t, instance_id) == after, "the snapshot saved as sent")


@check("CLAIM-5.2", "SaveSnapshotFenced without the caller's live claim writes nothing and answers false")
async def _fenced_save_refused(t: Trial) -> None:
    cases: list[tuple[str, str, timedelta | None, bytes]] = [
        ("no claim", "", None, TASK),
        ("an expired claim", "self", SHORT_TTL, TASK),
        ("another worker's claim", "other", LONG_TTL, TASK),
        ("a claim on another task", "self-other-task", LONG_TTL, build.task_id("other step")),
    ]
    for case, holder_kind, ttl, claimed_task in cases:
        instance_id, worker_id = t.instance(), t.worker()
        before = build.in_progress(instance_id, t.definition, build.at_task("step"))
        await save(t, before)
        if holder_kind:
            holder = t.worker() if holder_kind == "other" else worker_id
            await claim(t, instance_id, claimed_task, holder, ttl)
        if holder_kind == "self":
            await _sleep(LAPSE)
        after = build.in_progress(instance_id, t.definition, build.at_task("next"))
        answer = await t.ok(t.stubs.claims.SaveSnapshotFenced, _fenced(after, worker_id))
        t.expect(not answer.saved, f"saved = false with {case}")
        t.expect(await load(t, instance_id) == before, f"nothing written with {case}")


@check("CLAIM-5.4", "the claim is the only fence; a fenced save does not release it")
async def _fence_only(t: Trial) -> None:
    instance_id, holder = t.instance(), t.worker()
    await claim(t, instance_id, TASK, holder, LONG_TTL)
    elsewhere = build.completed(instance_id, t.definition)
    answer = await t.ok(t.stubs.claims.SaveSnapshotFenced, _fenced(elsewhere, holder))
    t.expect(answer.saved, "saved = true though the snapshot is not at the claimed task (no snapshot before either)")
    t.expect(not (await claim(t, instance_id, TASK, t.worker(), LONG_TTL)).HasField("claim"), "the claim still held")
