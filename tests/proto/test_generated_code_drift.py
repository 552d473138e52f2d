"""The drift check (`make proto-check`, part of `make lint`) catches hand edits of generated code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "client" / "sayiir_client" / "v1"
CODEGEN = ROOT / "scripts" / "proto_codegen.py"


def _check(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CODEGEN), "--check", "--target", str(target)], capture_output=True, text=True
    )


def test_committed_generated_code_matches_the_protos() -> None:
    result = _check(GENERATED)
    assert result.returncode == 0, result.stderr


def test_drift_check_fails_when_a_generated_file_is_edited_by_hand(tmp_path: Path) -> None:
    copy = tmp_path / "v1"
    shutil.copytree(GENERATED, copy, ignore=shutil.ignore_patterns("__pycache__"))
    edited = copy / "messages_pb2.pyi"
    edited.write_text(edited.read_text() + "\n# a hand edit\n")
    result = _check(copy)
    assert result.returncode == 1
    assert "differs: messages_pb2.pyi" in result.stderr


def test_drift_check_fails_when_the_packaged_proto_copy_is_edited(tmp_path: Path) -> None:
    copy = tmp_path / "proto"
    shutil.copytree(GENERATED.parent / "proto", copy)
    edited = copy / "sayiir" / "persistence" / "v1" / "service.proto"
    edited.write_text(edited.read_text() + "\n// a hand edit\n")
    result = subprocess.run(
        [sys.executable, str(CODEGEN), "--check", "--proto-target", str(copy)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "differs: proto/sayiir/persistence/v1/service.proto" in result.stderr
