"""The `sayiirctl` console script: parse, run one command, turn any failure into one line and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from sayiir_client import __version__
from sayiir_client.ctl import console, event, run, task, workflow
from sayiir_client.ctl.command import CommandParser, Commands
from sayiir_client.ctl.exit_codes import ExitCode, classify
from sayiir_client.ctl.output import wants_colour

COMMAND_GROUPS: list[Callable[[Commands], None]] = [
    workflow.register,
    event.register,
    task.register,
    run.register,
    console.register,
]
"""Each group's `register(commands)`, in help order: a new command group is one more entry."""

_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="sayiirctl",
        description="Operate a sayiir persistence server: list and inspect workflows, cancel, pause and unpause "
        "runs, send events, read task results, start runs. Exit codes: 0 ok, 1 failed, 2 bad usage, "
        "3 not found, 4 refused, 5 unavailable.",
    )
    parser.add_argument("--version", action="version", version=f"sayiirctl {__version__}")
    parser.set_defaults(help_of=parser)
    commands: Commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == [console.NAME]:
        return console.serve(arguments[1:])  # the console parses its own flags (they include --help)
    args = build_parser().parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None:
        args.help_of.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        return _INTERRUPTED
    except Exception as error:  # every failure is one line and its class's exit code, never a traceback
        code, label = classify(error)
        _error_line(label, error, args)
    return code


def _error_line(label: str, error: Exception, args: argparse.Namespace) -> None:
    message = " ".join(str(error).split()) or type(error).__name__
    if label == "unavailable" and getattr(args, "server", None):
        message += f" (server {args.server})"
    prefix = f"sayiirctl: {label}:"
    if wants_colour(sys.stderr):
        prefix = f"\x1b[31m{prefix}\x1b[0m"
    sys.stderr.write(f"{prefix} {message}\n")
