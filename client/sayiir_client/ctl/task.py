"""`sayiirctl task result ID TASK`: the output a task of a run produced."""

from __future__ import annotations

import argparse
import base64
import sys

from sayiir_client._async_client import AsyncPersistenceClient
from sayiir_client.ctl.command import Commands, client_command, group, id32
from sayiir_client.ctl.output import Output
from sayiir_client.errors import NotFoundError


def register(commands: Commands) -> None:
    tasks = group(commands, "task", "task results")
    result = tasks.add_parser(
        "result",
        help="the output of one task",
        description="The task's output: raw bytes on stdout (table), or a JSON line with its text and base64. "
        "Exit 3 when the instance does not exist or the task has no result yet.",
    )
    result.add_argument("instance_id", metavar="ID")
    result.add_argument("task", metavar="TASK", type=id32, help="64 hex digits, or the task's name (hashed)")
    client_command(result, task_result)


async def task_result(client: AsyncPersistenceClient, args: argparse.Namespace, out: Output) -> None:
    output = await client.load_task_result(args.instance_id, args.task)
    if output is None:
        raise NotFoundError(f"task {args.task.hex()} of {args.instance_id!r} has no result (it has not run)")
    if out.json:
        out.record(
            {
                "instance_id": args.instance_id,
                "task_id": args.task.hex(),
                "output_bytes": len(output),
                "output_text": _text(output),
                "output_base64": base64.b64encode(output).decode("ascii"),
            }
        )
        return
    out.stream.flush()
    sys.stdout.buffer.write(output)
    if out.stream.isatty() and not output.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()


def _text(output: bytes) -> str | None:
    try:
        return output.decode()
    except UnicodeDecodeError:
        return None
