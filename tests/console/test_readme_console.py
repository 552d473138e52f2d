"""The README's console section names the flags the console has, and its picture exists."""

from __future__ import annotations

import re

from sayiir_client.console.cli import build_parser
from tests.console.conftest import ROOT


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- section: console -->")
    return text[start : text.index("<!-- section: ", start + 1)]


def test_the_flag_table_lists_every_flag_of_the_console_and_no_other() -> None:
    flags = {option for action in build_parser()._actions for option in action.option_strings} - {"-h", "--help"}
    table = {
        flag
        for line in _section().splitlines()
        if line.startswith("| `--")
        for flag in re.findall(r"`(--[a-z-]+)", line)
    }

    assert table == flags


def test_the_picture_of_the_console_is_in_the_repository() -> None:
    (picture,) = re.findall(r"!\[[^]]*\]\(([^)]+)\)", _section())

    assert (ROOT / picture).is_file()
