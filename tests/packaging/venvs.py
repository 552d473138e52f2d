"""Fresh virtualenvs outside the repository, and bounded commands in them, for the packaging tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"
COMMAND_TIMEOUT_SECONDS = 300.0
"""One pip install or build: downloads from the package index (or its cache) included."""

_NOT_INHERITED = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH")


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without what ties a child to our virtualenv, our sources or our settings."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in _NOT_INHERITED and not name.startswith("SAYIIR_")
    }
    venv_bin = str(Path(sys.executable).parent)
    inherited["PATH"] = os.pathsep.join(p for p in inherited.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return inherited | overrides


def run(
    command: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (bounded); its output is in the assertion message when it fails."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=clean_environment() if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def create_venv(path: Path) -> Path:
    """A new virtualenv of this interpreter's base Python (nothing of ours in it); returns its bin directory."""
    run([sys.executable, "-m", "venv", path], cwd=path.parent)
    return path / "bin"


def pip_install(bin_dir: Path, *requirements: str | Path) -> None:
    """`pip install` into a virtualenv at the versions of constraints.txt."""
    run(
        [bin_dir / "python", "-m", "pip", "install", "--quiet", "--constraint", CONSTRAINTS, *requirements],
        cwd=bin_dir.parent,
    )


@cache
def constraint_pins() -> dict[NormalizedName, Version]:
    """constraints.txt: canonical name -> exact version."""
    pins: dict[NormalizedName, Version] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, separator, version = line.partition("==")
            assert separator, f"not an exact pin: {line!r}"
            assert canonicalize_name(name) not in pins, f"pinned twice: {name}"
            pins[canonicalize_name(name)] = Version(version)
    return pins
