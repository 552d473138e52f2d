"""`sayiirctl console [FLAGS]`: the web console (sayiir_client.console) with its own flags and variables."""

from __future__ import annotations

from collections.abc import Sequence

from sayiir_client.ctl.command import Commands

NAME = "console"


def register(commands: Commands) -> None:
    """Listed in the help only: `main` hands `sayiirctl console ...` to the console before parsing."""
    commands.add_parser(
        NAME,
        help="serve the web console (the client's console extra); its flags: sayiirctl console --help",
        add_help=False,
    )


def serve(arguments: Sequence[str]) -> int:
    from sayiir_client.console.cli import main  # only now: the console's extra may not be installed

    return main(arguments)
