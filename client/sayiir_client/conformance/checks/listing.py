"""LIST: ListWorkflows filters, orders, pages and summaries.

Every request filters on the check's own instance-id prefix, so other programs'
workflows never show up in what a check compares.
"""

from __future__ import annotations

from datetime import timedelta

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import Trial, check
from sayiir_client.conformance._steps import CANCEL, claim, save, store_signal
from sayiir_client.conformance.checks.dispatch import due_pair, expect_not_advanced
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr

BASE = build.now().replace(microsecond=0) - timedelta(hours=1)
"""The updated_at the checks give their workflows, a second apart."""


def _at(seconds: int) -> pb.WorkflowSnapshot:
    return pb.WorkflowSnapshot(updated_at=build.timestamp(BASE + timedelta(seconds=seconds)))


async def _stored(t: Trial, snapshot: pb.WorkflowSnapshot, second: int) -> pb.WorkflowSnapshot:
    snapshot.updated_at.CopyFrom(_at(second).updated_at)
    snapshot.created_at.CopyFrom(_at(second - 60).updated_at)
    await save(t, snapshot)
    return snapshot


async def _list(t: Trial, request: rr.ListWorkflowsRequest) -> rr.ListWorkflowsResponse:
    return await t.ok(t.stubs.snapshots.ListWorkflows, request)


def _names(answer: rr.ListWorkflowsResponse) -> list[str]:
    return [summary.instance_id for summary in answer.workflows]


@check("LIST-1.1", "ListWorkflows answers the workflows matching every filter given (states, hash, tag, prefix, times)")
async def _filters(t: Trial) -> None:
    prefix, tag = t.instance("list-"), t.tag()
    other_hash = build.task_id("another definition")
    running = await _stored(
        t, build.in_progress(t.adopt(prefix + "a"), t.definition, build.at_task("s"), tags=[tag]), 1
    )
    done = await _stored(t, build.completed(t.adopt(prefix + "b"), t.definition), 2)
    failed = await _stored(t, build.failed(t.adopt(prefix + "c"), other_hash), 3)
    cases = [
        ("no other filter", rr.ListWorkflowsRequest(), [running, done, failed]),
        (
            "states COMPLETED, FAILED",
            rr.ListWorkflowsRequest(states=[enums.WORKFLOW_STATE_COMPLETED, enums.WORKFLOW_STATE_FAILED]),
            [done, failed],
        ),
        ("definition_hash", rr.ListWorkflowsRequest(definition_hash=other_hash), [failed]),
        ("tag", rr.ListWorkflowsRequest(tag=tag), [running]),
        ("updated_after (inclusive)", rr.ListWorkflowsRequest(updated_after=_at(2).updated_at), [done, failed]),
        ("updated_before (exclusive)", rr.ListWorkflowsRequest(updated_before=_at(2).updated_at), [running]),
        (
            "states IN_PROGRESS and definition_hash (AND)",
            rr.ListWorkflowsRequest(states=[enums.WORKFLOW_STATE_IN_PROGRESS], definition_hash=other_hash),
            [],
        ),
    ]
    for case, request, wanted in cases:
        request.instance_id_prefix = prefix
        answer = await _list(t, request)
        expected = sorted(s.instance_id for s in wanted)
        t.expect(sorted(_names(answer)) == expected, f"{case}: {expected}")


@check("LIST-1.2", "a state filter of WORKFLOW_STATE_UNSPECIFIED is INVALID_ARGUMENT naming states[i]")
async def _unspecified_state(t: Trial) -> None:
    request = rr.ListWorkflowsRequest(
        states=[enums.WORKFLOW_STATE_PAUSED, enums.WORKFLOW_STATE_UNSPECIFIED], instance_id_prefix=t.instance()
    )
    await t.invalid(t.stubs.snapshots.ListWorkflows, request, "states[1]")


@check("LIST-2.1", "newest first by default (ties by descending id); by ascending id on request")
async def _orders(t: Trial) -> None:
    prefix = t.instance("order-")
    snapshots = [
        await _stored(t, build.completed(t.adopt(prefix + label), t.definition), second)
        for label, second in (("a", 5), ("b", 9), ("c", 9), ("d", 1))
    ]
    a, b, c, d = (s.instance_id for s in snapshots)
    newest = await _list(t, rr.ListWorkflowsRequest(instance_id_prefix=prefix))
    t.expect(_names(newest) == [c, b, a, d], "newest updated_at first, the tie c/b by descending id")
    by_id = await _list(t, rr.ListWorkflowsRequest(instance_id_prefix=prefix, order=enums.WORKFLOW_ORDER_INSTANCE_ID))
    t.expect(_names(by_id) == [a, b, c, d], "ascending instance id")


@check("LIST-2.2", "pages of at most page_size, a token while more follow, none on an exactly full last page")
async def _pages(t: Trial) -> None:
    prefix = t.instance("pages-")
    for index in range(4):
        await _stored(t, build.completed(t.adopt(f"{prefix}{index}"), t.definition), index)
    request = rr.ListWorkflowsRequest(instance_id_prefix=prefix, order=enums.WORKFLOW_ORDER_INSTANCE_ID, page_size=2)
    first = await _list(t, request)
    t.expect(_names(first) == [f"{prefix}0", f"{prefix}1"] and bool(first.next_page_token), "2 ids and a token")
    request.page_token = first.next_page_token
    last = await _list(t, request)
    t.expect(_names(last) == [f"{prefix}2", f"{prefix}3"], "the next 2 ids")
    t.expect(not last.next_page_token, "an exactly full last page: no next_page_token")


@check("LIST-2.3", "a page token is bound to its filters: with other filters it is INVALID_ARGUMENT page_token")
async def _token_bound(t: Trial) -> None:
    prefix = t.instance("bound-")
    for index in range(2):
        await _stored(t, build.completed(t.adopt(f"{prefix}{index}"), t.definition), index)
    first = await _list(t, rr.ListWorkflowsRequest(instance_id_prefix=prefix, page_size=1))
    other = rr.ListWorkflowsRequest(
        instance_id_prefix=prefix, page_size=1, page_token=first.next_page_token, states=[enums.WORKFLOW_STATE_FAILED]
    )
    await t.invalid(t.stubs.snapshots.ListWorkflows, other, "page_token")
    forged = rr.ListWorkflowsRequest(instance_id_prefix=prefix, page_token="forged-token")
    await t.invalid(t.stubs.snapshots.ListWorkflows, forged, "page_token")


@check("LIST-3.1", "a summary carries the workflow's id, hash, state, position, priority, tags and times")
async def _summary(t: Trial) -> None:
    tag = t.tag()
    snapshot = await _stored(t, build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[tag]), 7)
    answer = await _list(t, rr.ListWorkflowsRequest(instance_id_prefix=snapshot.instance_id))
    t.expect(len(answer.workflows) == 1, "one summary")
    summary = answer.workflows[0]
    t.expect(
        summary.instance_id == snapshot.instance_id
        and summary.definition_hash == t.definition
        and summary.state == enums.WORKFLOW_STATE_IN_PROGRESS
        and summary.created_at == snapshot.created_at
        and summary.updated_at == snapshot.updated_at
        and summary.position_kind == enums.POSITION_KIND_AT_TASK
        and summary.current_task_id == build.task_id("step")
        and summary.priority == 3
        and list(summary.tags) == [tag],
        "IN_PROGRESS, times as stored, AT_TASK with current_task_id (LIST-3.2), priority 3 when absent and the "
        "tags (LIST-3.3)",
    )


@check("LIST-3.4", "a summary shows the pending cancel and, while it is live, the claim on the current task")
async def _summary_signals_and_claim(t: Trial) -> None:
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"))
    await save(t, snapshot)
    worker_id = t.worker()
    # The claim first: it holds the cancel pending (SIG-9.2), which would otherwise apply at once (SIG-9.1).
    await claim(t, snapshot.instance_id, build.task_id("step"), worker_id, timedelta(hours=1))
    await store_signal(t, snapshot.instance_id, CANCEL)
    answer = await _list(t, rr.ListWorkflowsRequest(instance_id_prefix=snapshot.instance_id))
    summary = answer.workflows[0] if answer.workflows else pb.WorkflowSummary()
    t.expect(
        summary.HasField("pending_cancel") and not summary.HasField("pending_pause"),
        "pending_cancel set, pending_pause absent",
    )
    t.expect(summary.claim.worker_id == worker_id, "LIST-3.5: the live claim of the current task")


@check("LIST-3.6", "a summary shows the retry state of the current task")
async def _summary_retries(t: Trial) -> None:
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"))
    retry_at = build.timestamp(build.now().replace(microsecond=0) + timedelta(hours=1))
    snapshot.task_retries.append(
        pb.TaskRetryState(task_id=build.task_id("step"), attempts=2, last_error="boom", next_retry_at=retry_at)
    )
    await save(t, snapshot)
    answer = await _list(t, rr.ListWorkflowsRequest(instance_id_prefix=snapshot.instance_id))
    summary = answer.workflows[0] if answer.workflows else pb.WorkflowSummary()
    t.expect(summary.retry_attempts == 2 and summary.next_retry_at == retry_at, "retry_attempts 2 and next_retry_at")


@check("LIST-3.7", "ListWorkflows changes nothing: a run due to advance (its event buffered) stays where it is")
async def _listing_changes_nothing(t: Trial) -> None:
    control, due = await due_pair(t)
    await _list(t, rr.ListWorkflowsRequest(instance_id_prefix=due.instance_id))
    await expect_not_advanced(t, due, control)
