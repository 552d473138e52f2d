"""Where results go: aligned tables for people, JSON lines for scripts; colour only on a terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

FORMATS = ("table", "json")

_STYLES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}

STATE_STYLES = {
    "in_progress": "blue",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "paused": "yellow",
}


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--output table|json (SAYIIR_OUTPUT)."""
    parser.add_argument(
        "--output",
        "-o",
        choices=FORMATS,
        default=os.environ.get("SAYIIR_OUTPUT", "table"),
        help="table for people, json for scripts: one JSON object per line, stable keys (env SAYIIR_OUTPUT)",
    )


def wants_colour(stream: TextIO) -> bool:
    """Colour on a terminal only, and never with NO_COLOR set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


class Output:
    """The results of one command, in the format asked for."""

    def __init__(self, format: str, stream: TextIO | None = None) -> None:
        self.format = format
        self.stream = stream or sys.stdout
        self.colour = wants_colour(self.stream)

    @property
    def json(self) -> bool:
        return self.format == "json"

    def style(self, text: str, style: str | None) -> str:
        if not self.colour or style is None or not text:
            return text
        return f"\x1b[{_STYLES[style]}m{text}\x1b[0m"

    def record(self, values: Mapping[str, object]) -> None:
        """One JSON line (keys in the order given, which the commands keep stable)."""
        self.stream.write(json.dumps(values, ensure_ascii=False) + "\n")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], styles: Sequence[str | None] = ()) -> None:
        """Columns padded to their widest cell; `styles[i]` colours the cells of row i's second column."""
        widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]
        self.stream.write(self.style(_line(headers, widths), "bold") + "\n")
        for index, row in enumerate(rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            if index < len(styles) and len(cells) > 1:
                cells[1] = self.style(cells[1], styles[index])
            self.stream.write("  ".join(cells).rstrip() + "\n")

    def fields(self, pairs: Sequence[tuple[str, str]], styles: Mapping[str, str] | None = None) -> None:
        """`Label   value` lines, labels aligned; empty values are left out."""
        shown = [(label, value) for label, value in pairs if value]
        width = max((len(label) for label, _ in shown), default=0)
        for label, value in shown:
            styled = self.style(value, (styles or {}).get(label))
            self.stream.write(f"{self.style(label.ljust(width), 'bold')}  {styled}\n")

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")


def note(text: str) -> None:
    """A remark for people (stderr), never mixed into the results a script reads."""
    sys.stderr.write(text + "\n")


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
