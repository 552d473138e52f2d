"""`sayiirctl workflow list|show|cancel|pause|unpause`: what runs, what is stuck, and stopping it."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime
from typing import Literal

from sayiir_client._async_client import AsyncPersistenceClient
from sayiir_client.ctl import formatting as fmt
from sayiir_client.ctl.command import Commands, client_command, group, id32
from sayiir_client.ctl.exit_codes import UsageError
from sayiir_client.ctl.output import STATE_STYLES, Output, note
from sayiir_client.errors import NotFoundError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb

STATES = {
    "in_progress": enums.WORKFLOW_STATE_IN_PROGRESS,
    "completed": enums.WORKFLOW_STATE_COMPLETED,
    "failed": enums.WORKFLOW_STATE_FAILED,
    "cancelled": enums.WORKFLOW_STATE_CANCELLED,
    "paused": enums.WORKFLOW_STATE_PAUSED,
}
ORDERS = {"newest": enums.WORKFLOW_ORDER_NEWEST_FIRST, "id": enums.WORKFLOW_ORDER_INSTANCE_ID}
DEFAULT_LIMIT = 100
_MAX_PAGE = 1000


def register(commands: Commands) -> None:
    workflows = group(commands, "workflow", "list, inspect, cancel and pause workflow instances")

    listing = workflows.add_parser("list", help="workflow instances, newest first", description=_LIST_HELP)
    listing.add_argument(
        "--state", action="append", type=_state, default=[], help=f"only this state (repeatable): {', '.join(STATES)}"
    )
    listing.add_argument("--definition", metavar="HEX", type=id32, help="only this definition hash (or name)")
    listing.add_argument("--tag", help="only workflows whose current task carries this tag")
    listing.add_argument("--prefix", default="", help="only instance ids starting with this")
    listing.add_argument("--order", choices=ORDERS, default="newest", help="newest first (default) or by instance id")
    listing.add_argument("--limit", type=_positive, default=DEFAULT_LIMIT, help=f"at most N (default {DEFAULT_LIMIT})")
    client_command(listing, list_workflows)

    show = workflows.add_parser("show", help="one instance in detail", description=_SHOW_HELP)
    show.add_argument("instance_id", metavar="ID")
    client_command(show, show_workflow)

    for kind, verb in (("cancel", "cancel"), ("pause", "pause")):
        request = workflows.add_parser(kind, help=f"ask the run to {verb}", description=_SIGNAL_HELP.format(kind))
        request.add_argument("instance_id", metavar="ID")
        request.add_argument("--reason", help="why (kept in the run's state)")
        request.add_argument("--by", help="who asks (default: your user name)")
        request.set_defaults(kind=kind)
        client_command(request, request_signal)

    unpause = workflows.add_parser("unpause", help="resume a paused run where it stopped")
    unpause.add_argument("instance_id", metavar="ID")
    client_command(unpause, unpause_workflow)


_LIST_HELP = "Workflow instances matching every filter given, newest update first (or by instance id)."
_SHOW_HELP = "State, position, completed tasks with output sizes, retries, pending requests and the live claim."
_SIGNAL_HELP = (
    "Request a {0}: applied at once when no worker holds the run (SIG-9), else by the holder at its next "
    "boundary. Refused (exit 4) when the state forbids it."
)


def _state(text: str) -> enums.WorkflowState.ValueType:
    key = text.lower().replace("-", "_")
    if key not in STATES:
        raise ValueError(text)
    return STATES[key]


_state.__name__ = "state"


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


_positive.__name__ = "positive integer"


# --- list ----------------------------------------------------------------------------------------------------


async def list_workflows(client: AsyncPersistenceClient, args: argparse.Namespace, out: Output) -> None:
    summaries, more = await _first_summaries(client, args)
    if out.json:
        for summary in summaries:
            out.record(fmt.summary_json(summary))
        return
    now = datetime.now(UTC)
    rows = [_list_row(summary, now) for summary in summaries]
    out.table(_LIST_HEADERS, rows, [STATE_STYLES.get(fmt.state_name(s.state)) for s in summaries])
    if not summaries:
        note("(no workflows match)")
    if more:
        note(f"(more workflows match: showing the first {args.limit}; raise --limit or narrow the filters)")


async def _first_summaries(
    client: AsyncPersistenceClient, args: argparse.Namespace
) -> tuple[list[pb.WorkflowSummary], bool]:
    """Up to --limit summaries, page by page, and whether more matched."""
    summaries: list[pb.WorkflowSummary] = []
    token = ""
    while True:
        page = await client.list_workflows(
            states=args.state,
            definition_hash=args.definition,
            tag=args.tag,
            prefix=args.prefix,
            order=ORDERS[args.order],
            page_size=min(args.limit - len(summaries) + 1, _MAX_PAGE),
            page_token=token,
        )
        summaries.extend(page.workflows)
        token = page.next_page_token
        if len(summaries) > args.limit or not token:
            return summaries[: args.limit], len(summaries) > args.limit


_LIST_HEADERS = ("INSTANCE", "STATE", "POSITION", "TASK", "PRI", "TAGS", "UPDATED", "CLAIMED BY", "RETRY", "PENDING")


def _list_row(summary: pb.WorkflowSummary, now: datetime) -> list[str]:
    return [
        summary.instance_id,
        fmt.state_name(summary.state),
        fmt.position_kind_name(summary.position_kind) or "",
        fmt.short_hash(summary.current_task_id),
        str(summary.priority),
        ",".join(summary.tags),
        fmt.local_time(fmt.moment(summary, "updated_at"), now),
        summary.claim.worker_id if summary.HasField("claim") else "",
        _retry_cell(summary, now),
        fmt.pending(summary),
    ]


def _retry_cell(summary: pb.WorkflowSummary, now: datetime) -> str:
    if not summary.retry_attempts:
        return ""
    next_retry = fmt.moment(summary, "next_retry_at")
    return f"{summary.retry_attempts}" + (f", next {fmt.relative(next_retry, now)}" if next_retry else "")


# --- show ----------------------------------------------------------------------------------------------------


async def show_workflow(client: AsyncPersistenceClient, args: argparse.Namespace, out: Output) -> None:
    snapshot = await client.load_snapshot(args.instance_id)
    summary = await _summary_of(client, args.instance_id)
    if out.json:
        out.record(_detail_json(snapshot, summary))
        return
    _show_table(snapshot, summary, out, datetime.now(UTC))


async def _summary_of(client: AsyncPersistenceClient, instance_id: str) -> pb.WorkflowSummary:
    """The instance's summary (live claim, pending requests, retries): the first id of its prefix, by id."""
    page = await client.list_workflows(prefix=instance_id, order=enums.WORKFLOW_ORDER_INSTANCE_ID, page_size=1)
    if not page.workflows or page.workflows[0].instance_id != instance_id:
        raise NotFoundError(f"no workflow instance {instance_id!r}")
    return page.workflows[0]


def _position(snapshot: pb.WorkflowSnapshot) -> pb.ExecutionPosition | None:
    state = snapshot.WhichOneof("state")
    if state == "in_progress":
        return snapshot.in_progress.position
    if state == "paused":
        return snapshot.paused.position
    return None


def _completed_tasks(snapshot: pb.WorkflowSnapshot) -> list[pb.TaskResult]:
    state = snapshot.WhichOneof("state")
    if state in ("in_progress", "paused", "cancelled"):
        return list(getattr(snapshot, state).completed_tasks)
    return []


def _position_json(position: pb.ExecutionPosition | None) -> dict[str, object] | None:
    """The position's kind and its ids and times (hex, RFC 3339); None when the run is finished."""
    if position is None:
        return None
    kind = position.WhichOneof("position")
    if kind is None:
        return {"kind": None}
    detail = getattr(position, kind)
    values: dict[str, object] = {"kind": kind}
    for field, value in detail.ListFields():
        if isinstance(value, bytes):
            values[field.name] = value.hex()
        elif field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
            values[field.name] = fmt.iso(fmt.moment(detail, field.name))
        elif isinstance(value, str | int | float | bool):
            values[field.name] = value
    return values


def _detail_json(snapshot: pb.WorkflowSnapshot, summary: pb.WorkflowSummary) -> dict[str, object]:
    state = snapshot.WhichOneof("state")
    detail = fmt.summary_json(summary)
    detail["position"] = _position_json(_position(snapshot))
    detail["completed_tasks"] = [
        {"task_id": result.task_id.hex(), "output_bytes": len(result.output)} for result in _completed_tasks(snapshot)
    ]
    detail["retries"] = [
        {
            "task_id": retry.task_id.hex(),
            "attempts": retry.attempts,
            "max_retries": retry.policy.max_retries,
            "last_error": retry.last_error,
            "last_failed_worker": retry.last_failed_worker if retry.HasField("last_failed_worker") else None,
            "next_retry_at": fmt.iso(fmt.moment(retry, "next_retry_at")),
        }
        for retry in snapshot.task_retries
    ]
    detail["final_output_bytes"] = len(snapshot.completed.final_output) if state == "completed" else None
    detail["error"] = snapshot.failed.error if state == "failed" else None
    detail["stopped"] = _stopped_json(snapshot)
    return detail


def _stopped_json(snapshot: pb.WorkflowSnapshot) -> dict[str, object] | None:
    """Who cancelled or paused the run, why and when (None in the other states)."""
    stopped = _stopped(snapshot)
    if stopped is None:
        return None
    by, reason, at = stopped
    return {"reason": reason, "by": by, "at": fmt.iso(at)}


def _stopped(snapshot: pb.WorkflowSnapshot) -> tuple[str | None, str | None, datetime | None] | None:
    """(by, reason, at) of a Cancelled or Paused run."""
    if snapshot.HasField("cancelled"):
        cancelled = snapshot.cancelled
        by = cancelled.cancelled_by if cancelled.HasField("cancelled_by") else None
        reason = cancelled.reason if cancelled.HasField("reason") else None
        return by, reason, fmt.moment(cancelled, "cancelled_at")
    if snapshot.HasField("paused"):
        held = snapshot.paused
        by = held.paused_by if held.HasField("paused_by") else None
        reason = held.reason if held.HasField("reason") else None
        return by, reason, fmt.moment(held, "paused_at")
    return None


def _show_table(snapshot: pb.WorkflowSnapshot, summary: pb.WorkflowSummary, out: Output, now: datetime) -> None:
    state = fmt.state_name(summary.state)
    out.fields(
        [
            ("Instance", summary.instance_id),
            ("State", state),
            ("Definition", fmt.short_hash(summary.definition_hash)),
            ("Position", _position_text(_position(snapshot), now)),
            ("Priority", str(summary.priority) if summary.HasField("current_task_id") else ""),
            ("Tags", ", ".join(summary.tags)),
            ("Created", fmt.full_local_time(fmt.moment(summary, "created_at"), now)),
            ("Updated", fmt.full_local_time(fmt.moment(summary, "updated_at"), now)),
            ("Stopped", _stopped_text(snapshot, now)),
            ("Output", fmt.size(len(snapshot.completed.final_output)) if state == "completed" else ""),
            ("Error", snapshot.failed.error if state == "failed" else ""),
            ("Claim", _claim_text(summary, now)),
            ("Cancel asked", _request_text(summary, "pending_cancel", now)),
            ("Pause asked", _request_text(summary, "pending_pause", now)),
        ],
        {"State": STATE_STYLES.get(state, "bold"), "Error": "red"},
    )
    _retries_table(snapshot, out, now)
    results = _completed_tasks(snapshot)
    if results:
        out.line()
        out.table(("COMPLETED TASK", "OUTPUT"), [[fmt.short_hash(r.task_id), fmt.size(len(r.output))] for r in results])


def _position_text(position: pb.ExecutionPosition | None, now: datetime) -> str:
    values = _position_json(position)
    if values is None or values["kind"] is None:
        return ""
    kind = str(values["kind"]).replace("_", " ")
    if position is not None and position.HasField("at_task"):
        return f"{kind} {fmt.short_hash(position.at_task.task_id)}"
    if position is not None and position.HasField("at_signal"):
        return f"{kind} {position.at_signal.signal_name!r}" + _until(position.at_signal, now)
    if position is not None and position.HasField("at_delay"):
        return kind + _until(position.at_delay, now)
    return kind


def _until(wait: pb.AtSignal | pb.AtDelay, now: datetime) -> str:
    wake = fmt.moment(wait, "wake_at")
    return f" until {fmt.local_time(wake, now)}" if wake else ""


def _claim_text(summary: pb.WorkflowSummary, now: datetime) -> str:
    if not summary.HasField("claim"):
        return ""
    expires = fmt.moment(summary.claim, "expires_at")
    return summary.claim.worker_id + (f", expires {fmt.local_time(expires, now)}" if expires else ", no expiry")


def _request_text(summary: pb.WorkflowSummary, field: Literal["pending_cancel", "pending_pause"], now: datetime) -> str:
    if not summary.HasField(field):
        return ""
    request: pb.SignalRequest = getattr(summary, field)
    return _who_why_when(
        request.requested_by if request.HasField("requested_by") else None,
        request.reason if request.HasField("reason") else None,
        fmt.moment(request, "requested_at"),
        now,
    )


def _stopped_text(snapshot: pb.WorkflowSnapshot, now: datetime) -> str:
    stopped = _stopped(snapshot)
    if stopped is None:
        return ""
    by, reason, at = stopped
    return _who_why_when(by, reason, at, now)


def _who_why_when(by: str | None, reason: str | None, at: datetime | None, now: datetime) -> str:
    parts = [f"by {by}" if by else "", f"at {fmt.local_time(at, now)}" if at else "", f"({reason})" if reason else ""]
    return " ".join(part for part in parts if part) or "yes"


def _retries_table(snapshot: pb.WorkflowSnapshot, out: Output, now: datetime) -> None:
    if not snapshot.task_retries:
        return
    rows = [
        [
            fmt.short_hash(retry.task_id),
            f"{retry.attempts}/{retry.policy.max_retries}",
            fmt.local_time(fmt.moment(retry, "next_retry_at"), now),
            retry.last_failed_worker if retry.HasField("last_failed_worker") else "",
            retry.last_error,
        ]
        for retry in snapshot.task_retries
    ]
    out.line()
    out.table(("RETRYING TASK", "ATTEMPTS", "NEXT RETRY", "LAST WORKER", "LAST ERROR"), rows)


# --- cancel, pause, unpause ----------------------------------------------------------------------------------


async def request_signal(client: AsyncPersistenceClient, args: argparse.Namespace, out: Output) -> None:
    kind = enums.SIGNAL_KIND_CANCEL if args.kind == "cancel" else enums.SIGNAL_KIND_PAUSE
    request = pb.SignalRequest(requested_by=args.by or _user())
    if args.reason is not None:
        request.reason = args.reason
    request.requested_at.GetCurrentTime()
    await client.store_signal(args.instance_id, kind, request)
    applied = (await client.load_snapshot(args.instance_id)).WhichOneof("state") == _APPLIED_STATE[args.kind]
    if out.json:
        record = {"instance_id": args.instance_id, "action": args.kind, "requested": True, "applied": applied}
        out.record(record | _request_fields(request))
        return
    who = f"{args.instance_id} by {request.requested_by}"
    if applied:
        out.line(f"{_APPLIED_STATE[args.kind]}: {who} (no worker held the run)")
    else:
        out.line(f"{args.kind} requested for {who}: a worker holds the run and applies it at its next boundary")


_APPLIED_STATE = {"cancel": "cancelled", "pause": "paused"}
"""The state a request leaves the run in once applied."""


def _request_fields(request: pb.SignalRequest) -> dict[str, object]:
    fields = fmt.signal_json(request)
    assert fields is not None
    return fields


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment nor the password database (containers)
        raise UsageError("cannot tell who you are: give --by WHO") from None


async def unpause_workflow(client: AsyncPersistenceClient, args: argparse.Namespace, out: Output) -> None:
    snapshot = await client.unpause(args.instance_id)
    state = snapshot.WhichOneof("state") or ""
    if out.json:
        out.record({"instance_id": args.instance_id, "action": "unpause", "state": state})
        return
    out.line(f"{args.instance_id} unpaused: {out.style(state, STATE_STYLES.get(state))}")
