"""What the command groups share: the parser class, the handler of a command that talks to a server, ids."""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeAlias

from sayiir_client._async_client import AsyncPersistenceClient
from sayiir_client.ctl.connection import add_connection_arguments, connect
from sayiir_client.ctl.exit_codes import ExitCode
from sayiir_client.ctl.output import Output, add_output_arguments
from sayiir_client.ids import ID_BYTES, TaskId

Handler: TypeAlias = Callable[[argparse.Namespace], int]
"""What a leaf subcommand runs (set as its parser's `handler` default): the parsed arguments → exit code."""

ClientCommand: TypeAlias = Callable[[AsyncPersistenceClient, argparse.Namespace, Output], Awaitable[None]]

Commands: TypeAlias = "argparse._SubParsersAction[CommandParser]"
"""The subcommands of a parser: a group's `register(commands)` adds its own to the top level's."""


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit code 2 (ExitCode.USAGE)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(ExitCode.USAGE)


def group(commands: Commands, name: str, help: str) -> Commands:
    """A command group (`sayiirctl NAME ...`); alone, it prints its help and exits with the usage code."""
    parser = commands.add_parser(name, help=help, description=help)
    parser.set_defaults(help_of=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def client_command(parser: argparse.ArgumentParser, command: ClientCommand) -> None:
    """Make `parser` a command that talks to a server: the connection and output flags, and its handler."""
    add_connection_arguments(parser)
    add_output_arguments(parser)
    handler: Handler = functools.partial(_run_client_command, command)
    parser.set_defaults(handler=handler)


def _run_client_command(command: ClientCommand, args: argparse.Namespace) -> int:
    output = Output(args.output)

    async def run() -> None:
        async with connect(args) as client:
            await command(client, args, output)

    asyncio.run(run())
    return ExitCode.OK


def id32(text: str) -> bytes:
    """A task id or definition hash: 64 hex digits as they are, anything else a name hashed (TaskId.from_name)."""
    if len(text) == 2 * ID_BYTES:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    if not text:
        raise ValueError("empty")
    return bytes(TaskId.from_name(text))


id32.__name__ = "hex id or name"
