"""`sayiirctl event send ID NAME`: deliver an external event to a run waiting for it (or to its buffer)."""

from __future__ import annotations

import argparse

from sayiir_client._async_client import AsyncPersistenceClient
from sayiir_client.ctl import formatting as fmt
from sayiir_client.ctl.command import Commands, client_command, group
from sayiir_client.ctl.output import Output
from sayiir_client.ctl.payloads import STDIN, read_payload


def register(commands: Commands) -> None:
    events = group(commands, "event", "send external events")
    send = events.add_parser(
        "send",
        help="append an event to the instance's FIFO of that name",
        description="Append an event; a run waiting at a signal of that name takes the oldest one. Accepted "
        "whether or not the instance exists (events may arrive before the run). Never retried: a repeat sends twice.",
    )
    send.add_argument("instance_id", metavar="ID")
    send.add_argument("signal_name", metavar="NAME")
    source = send.add_mutually_exclusive_group()
    source.add_argument("--payload", metavar="TEXT", help="the payload, as UTF-8 text")
    source.add_argument("--payload-file", metavar="PATH", help="the payload, read from a file")
    source.add_argument("stdin", nargs="?", choices=[STDIN], help="read the payload from standard input")
    client_command(send, send_event)


async def send_event(client: AsyncPersistenceClient, args: argparse.Namespace, out: Output) -> None:
    payload = read_payload(args.payload, STDIN if args.stdin else args.payload_file, "--payload-file")
    await client.send_event(args.instance_id, args.signal_name, payload)
    if out.json:
        out.record({"instance_id": args.instance_id, "signal_name": args.signal_name, "payload_bytes": len(payload)})
        return
    out.line(f"event {args.signal_name!r} sent to {args.instance_id} ({fmt.size(len(payload))})")
