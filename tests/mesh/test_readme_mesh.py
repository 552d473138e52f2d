"""The README's "Running in a mesh" table names real `serve` flags, their variables and their defaults."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from sayiir_server.cli import SERVE_FLAGS

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(--[a-z-]+)[^`]*` \| `(SAYIIR_[A-Z_]+)` \| ([^|]+) \|", re.MULTILINE)


def _mesh_section() -> str:
    text = README.read_text()
    start = text.index("<!-- section: mesh -->")
    return text[start : text.index("<!-- section: ", start + 1)]


def _documented(default: Any) -> str:
    if default is None:
        return "none"
    if isinstance(default, timedelta):
        return f"`{default.total_seconds():g}`"
    return f"`{default}`"


def test_each_documented_flag_exists_with_its_variable_and_default() -> None:
    flags = {flag.option: flag for flag in SERVE_FLAGS}
    rows = ROW.findall(_mesh_section())
    assert len(rows) >= 10
    for option, env_var, default in rows:
        flag = flags[option]
        assert env_var == flag.env_var
        assert default.strip().split(" ")[0] == _documented(flag.default).split(" ")[0], option


def test_every_serve_flag_has_a_row_in_the_readme() -> None:
    documented = {option for option, _, _ in ROW.findall(README.read_text())}
    assert {flag.option for flag in SERVE_FLAGS} <= documented
