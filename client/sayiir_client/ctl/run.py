"""`sayiirctl run start ID`: start a run atomically (PrepareRun), as a starter program would."""

from __future__ import annotations

import argparse

from sayiir_client._async_client import AsyncPersistenceClient
from sayiir_client.ctl import formatting as fmt
from sayiir_client.ctl.command import Commands, client_command, group, id32
from sayiir_client.ctl.output import STATE_STYLES, Output
from sayiir_client.ctl.payloads import read_payload
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb

POLICIES = {
    "fail": enums.CONFLICT_POLICY_FAIL,
    "use-existing": enums.CONFLICT_POLICY_USE_EXISTING,
    "terminate-existing": enums.CONFLICT_POLICY_TERMINATE_EXISTING,
}


def register(commands: Commands) -> None:
    runs = group(commands, "run", "start runs")
    start = runs.add_parser(
        "start",
        help="start a run at its first task",
        description="Create the run InProgress at its first task, atomically. With an existing instance: "
        "fail (exit 4, the default), use-existing (report it) or terminate-existing (start afresh).",
    )
    start.add_argument("instance_id", metavar="ID")
    start.add_argument("--definition", required=True, type=id32, help="definition hash: 64 hex digits, or a name")
    start.add_argument("--first-task", required=True, type=id32, help="first task id: 64 hex digits, or its name")
    source = start.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="TEXT", help="the run's input, as UTF-8 text")
    source.add_argument("--input-file", metavar="PATH", help="the run's input, read from a file (-: stdin)")
    start.add_argument("--policy", choices=POLICIES, default="fail", help="when the instance exists (default fail)")
    start.add_argument("--priority", type=int, choices=range(1, 6), metavar="1-5", help="first task's priority")
    start.add_argument("--tag", action="append", default=[], help="first task's routing tag (repeatable)")
    client_command(start, start_run)


async def start_run(client: AsyncPersistenceClient, args: argparse.Namespace, out: Output) -> None:
    first = pb.FirstTask(task_id=args.first_task, tags=args.tag)
    if args.priority is not None:
        first.priority = args.priority
    run_input = read_payload(args.input, args.input_file, "--input-file")
    outcome = await client.prepare_run(args.instance_id, args.definition, run_input, first, POLICIES[args.policy])
    state: str
    if outcome.HasField("fresh"):
        state = outcome.fresh.snapshot.WhichOneof("state") or ""
        result = "started"
    else:
        state = outcome.existing_status.status.WhichOneof("status") or ""
        result = "existing"
    if out.json:
        out.record({"instance_id": args.instance_id, "outcome": result, "state": state})
        return
    shown = out.style(state, STATE_STYLES.get(state))
    if result == "started":
        out.line(f"started {args.instance_id}: {shown} at task {fmt.short_hash(args.first_task)}")
    else:
        out.line(f"{args.instance_id} exists already: {shown} (left alone)")
