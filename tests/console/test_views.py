"""What the pages show and accept, computed without a server or a browser."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from sayiir_client import AccessDeniedError, CannotCancelError, CannotPauseError, InvalidArgumentError, NotFoundError
from sayiir_client.console import actions, reads, views
from sayiir_client.console.connection import (
    DEFAULT_SERVER,
    ConnectionSettings,
    UsageError,
    add_connection_flags,
    connection_settings,
)
from sayiir_client.console.csrf import CsrfGuard
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from tests.console import seed

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


# --- previews and times -----------------------------------------------------------------------------------------


def test_a_utf8_output_is_previewed_as_text() -> None:
    shown = views.preview('{"total": "12 €"}'.encode())

    assert (shown.text, shown.hex, shown.size) == ('{"total": "12 €"}', None, "19 B")


def test_a_long_text_output_is_cut_and_marked() -> None:
    shown = views.preview(b"x" * 500)

    assert shown.text == "x" * views.PREVIEW_CHARACTERS
    assert shown.truncated


@pytest.mark.parametrize("output", [b"\xff\xfe\x00", b"text with a \x1b escape"])
def test_bytes_that_are_not_printable_text_are_previewed_in_hex(output: bytes) -> None:
    shown = views.preview(output)

    assert shown.text is None
    assert shown.hex == output.hex(" ")


@pytest.mark.parametrize(("count", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 << 20, "3.0 MiB")])
def test_sizes_are_shown_in_the_largest_binary_unit_below_them(count: int, text: str) -> None:
    assert views.byte_size(count) == text


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(seconds=42), "in 42 s"),
        (-timedelta(minutes=3, seconds=5), "3 min ago"),
        (timedelta(days=2), "in 2 d"),
    ],
)
def test_times_are_shown_relative_to_now_in_the_largest_whole_unit(offset: timedelta, text: str) -> None:
    assert views.relative(NOW + offset, NOW) == text


# --- the workflows page -----------------------------------------------------------------------------------------


def test_a_query_keeps_its_filters_in_the_url_and_reads_back_the_same() -> None:
    query = reads.WorkflowQuery(states=("paused", "failed"), tag="eu west", prefix="order&1", page_size=25)

    url = query.url(page_token="abc")

    assert url == "/workflows?state=paused&state=failed&tag=eu+west&prefix=order%261&page_size=25&page_token=abc"
    assert reads.parse_query(parse_qs(urlsplit(url).query)) == replace(query, page_token="abc")


def test_a_changed_filter_starts_again_from_the_first_page() -> None:
    query = reads.WorkflowQuery(prefix="a", page_token="abc")

    assert query.url(tag="t") == "/workflows?tag=t&prefix=a"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": ["running"]}, "state"),
        ({"definition": ["abc"]}, "definition"),
        ({"definition": ["z" * 64]}, "definition"),
        ({"tag": ["a\x00b"]}, "tag"),
        ({"prefix": ["a\x00"]}, "prefix"),
        ({"page_size": ["7"]}, "page_size"),
    ],
)
def test_a_filter_the_server_would_refuse_names_its_field(params: dict[str, list[str]], field: str) -> None:
    with pytest.raises(reads.QueryError) as raised:
        reads.parse_query(params)

    assert raised.value.field == field


def test_a_summary_row_shows_pending_requests_claim_and_retries() -> None:
    summary = pb.WorkflowSummary(
        instance_id="order-1",
        state=enums.WORKFLOW_STATE_IN_PROGRESS,
        position_kind=enums.POSITION_KIND_AT_TASK,
        current_task_id=seed.node_id("charge"),
        priority=2,
        tags=["eu"],
        pending_cancel=pb.SignalRequest(),
        claim=pb.TaskClaim(worker_id="worker-a", task_id=seed.node_id("charge")),
        retry_attempts=3,
    )
    summary.claim.expires_at.FromDatetime(NOW + timedelta(seconds=30))

    row = views.summary_row(summary, NOW)

    assert (row.state, row.position, row.task, row.pending, row.retry_attempts) == (
        "InProgress",
        "AtTask",
        seed.node_id("charge").hex()[:12],
        ("cancel",),
        3,
    )
    assert row.claim is not None
    assert row.claim.worker == "worker-a"
    assert row.claim.expires is not None
    assert row.claim.expires.relative == "in 30 s"


# --- dispatch ---------------------------------------------------------------------------------------------------


def _at_task(instance_id: str, priority: int = 3, **fields: object) -> pb.WorkflowSummary:
    return pb.WorkflowSummary(
        instance_id=instance_id,
        state=enums.WORKFLOW_STATE_IN_PROGRESS,
        position_kind=enums.POSITION_KIND_AT_TASK,
        current_task_id=seed.node_id("t"),
        priority=priority,
        **fields,  # type: ignore[arg-type]
    )


def _claimed(instance_id: str, worker: str, expires_in: timedelta) -> pb.WorkflowSummary:
    summary = _at_task(instance_id, claim=pb.TaskClaim(worker_id=worker))
    summary.claim.expires_at.FromDatetime(NOW + expires_in)
    return summary


def test_ready_tasks_are_counted_per_priority() -> None:
    summaries = [_at_task("a", 1), _at_task("b", 1), _at_task("c", 5)]

    shown = views.dispatch_view(summaries, NOW, complete=True)

    assert shown.ready_by_priority == {1: 2, 2: 0, 3: 0, 4: 0, 5: 1}


def test_a_claimed_task_is_not_ready_and_counts_for_its_worker() -> None:
    summaries = [
        _claimed("a", "worker-b", timedelta(minutes=1)),
        _claimed("b", "worker-a", timedelta(minutes=1)),
        _claimed("c", "worker-b", timedelta(minutes=1)),
    ]

    shown = views.dispatch_view(summaries, NOW, complete=True)

    assert shown.ready_by_priority[3] == 0
    assert shown.claims_by_worker == [("worker-b", 2), ("worker-a", 1)]


def test_a_claim_whose_expiry_passed_is_listed_as_expired() -> None:
    summaries = [_claimed("lapsed", "worker-a", -timedelta(seconds=5)), _claimed("live", "worker-a", timedelta(1))]

    shown = views.dispatch_view(summaries, NOW, complete=True)

    assert [instance_id for instance_id, _ in shown.expired_claims] == ["lapsed"]


def test_a_task_backing_off_or_held_by_a_pending_request_is_not_ready() -> None:
    backing_off = _at_task("retrying")
    backing_off.next_retry_at.FromDatetime(NOW + timedelta(minutes=1))
    retry_due = _at_task("retry-due")
    retry_due.next_retry_at.FromDatetime(NOW - timedelta(minutes=1))
    summaries = [backing_off, retry_due, _at_task("held", pending_pause=pb.SignalRequest())]

    shown = views.dispatch_view(summaries, NOW, complete=True)

    assert (shown.backing_off, shown.held_by_request, shown.ready_by_priority[3]) == (1, 1, 1)


def test_a_workflow_not_at_a_task_is_not_ready() -> None:
    waiting = pb.WorkflowSummary(
        instance_id="sleeping", state=enums.WORKFLOW_STATE_IN_PROGRESS, position_kind=enums.POSITION_KIND_AT_DELAY
    )

    assert sum(views.dispatch_view([waiting], NOW, complete=True).ready_by_priority.values()) == 0


# --- one workflow -----------------------------------------------------------------------------------------------


def test_the_timeline_lists_the_completed_tasks_in_order_and_marks_the_latest() -> None:
    snapshot = seed.at_task("w", done=(("first", b"1"), ("second", b"22")))

    shown = views.workflow_view(snapshot, NOW, {}, None)

    assert [(task.number, task.task_hex, task.output.size, task.last) for task in shown.timeline] == [
        (1, seed.node_id("first").hex(), "1 B", False),
        (2, seed.node_id("second").hex(), "2 B", True),
    ]


def test_a_signal_wait_shows_the_event_it_waits_for_and_its_timeout() -> None:
    wait = pb.AtSignal(signal_id=seed.node_id("s"), signal_name="approved")
    wait.wake_at.FromDatetime(NOW + timedelta(hours=1))
    snapshot = pb.WorkflowSnapshot(
        instance_id="w", in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_signal=wait))
    )

    shown = views.workflow_view(snapshot, NOW, {}, None)

    assert shown.position == "AtSignal"
    assert [
        (detail.label, detail.text or (detail.moment and detail.moment.relative)) for detail in shown.position_details
    ] == [
        ("event", "approved"),
        ("times out", "in 1 h"),
    ]


def test_a_cancelled_workflow_shows_who_cancelled_it_and_why() -> None:
    snapshot = pb.WorkflowSnapshot(
        instance_id="w", cancelled=pb.CancelledState(reason="duplicate order", cancelled_by="ops-alice")
    )
    snapshot.cancelled.cancelled_at.FromDatetime(NOW)

    shown = views.workflow_view(snapshot, NOW, {}, None)

    assert [(detail.label, detail.text) for detail in shown.state_details] == [
        ("cancelled at", ""),
        ("by", "ops-alice"),
        ("reason", "duplicate order"),
    ]


def test_the_retries_show_attempts_the_policy_allows_and_the_last_failure() -> None:
    (retry,) = views.workflow_view(seed.failing("w", attempts=2), NOW, {}, None).retries

    assert (retry.attempts, retry.max_retries, retry.last_error, retry.last_failed_worker) == (
        2,
        5,
        "card declined: insufficient funds",
        "worker-b",
    )


# --- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "error", "status", "message"),
    [
        ("cancel", CannotCancelError("Completed"), 409, "cannot cancel: Completed"),
        ("unpause", CannotPauseError("InProgress"), 409, "cannot unpause: InProgress"),
        ("pause", NotFoundError("no snapshot"), 404, "cannot pause: no such workflow"),
        ("event", InvalidArgumentError("signal_name", "must not be empty"), 400, "cannot event: invalid signal_name"),
        (
            "cancel",
            AccessDeniedError(grpc.StatusCode.PERMISSION_DENIED, "role reader may not call X"),
            403,
            "cannot cancel: this token may only read",
        ),
    ],
)
def test_a_refused_call_is_told_in_one_line_from_its_typed_error(
    action: str, error: Exception, status: int, message: str
) -> None:
    refusal = actions.refusal(action, error)

    assert refusal.status == status
    assert refusal.message.startswith(message)


# --- CSRF -------------------------------------------------------------------------------------------------------


def test_a_form_token_is_accepted_only_with_its_own_cookie() -> None:
    guard = CsrfGuard()
    cookie, other = guard.new_cookie(), guard.new_cookie()

    assert guard.allows(cookie, guard.token(cookie), {}, "http://127.0.0.1:8080")
    assert not guard.allows(other, guard.token(cookie), {}, "http://127.0.0.1:8080")
    assert not guard.allows(None, guard.token(cookie), {}, "http://127.0.0.1:8080")


def test_a_token_of_another_console_process_is_refused() -> None:
    cookie = CsrfGuard.new_cookie()

    assert not CsrfGuard().allows(cookie, CsrfGuard().token(cookie), {}, "http://127.0.0.1:8080")


# --- connection flags -------------------------------------------------------------------------------------------


def _settings(argv: list[str], environ: dict[str, str]) -> ConnectionSettings:
    parser = argparse.ArgumentParser()
    add_connection_flags(parser)
    return connection_settings(parser.parse_args(argv), environ)


def test_a_flag_wins_over_its_environment_variable_and_the_variable_over_the_default() -> None:
    environ = {"SAYIIR_SERVER": "env-host:1", "SAYIIR_TOKEN": "env-token", "SAYIIR_TIMEOUT": "3"}

    settings = _settings(["--server", "flag-host:2"], environ)

    assert settings == ConnectionSettings(server="flag-host:2", token="env-token", timeout=timedelta(seconds=3))
    assert _settings([], {}) == ConnectionSettings(server=DEFAULT_SERVER)


def test_tls_files_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--ca: no such file"):
        _settings(["--ca", str(tmp_path / "missing.pem")], {})
