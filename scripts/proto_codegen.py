"""Generate the Python code of the contract, or check that the committed copy is current.

The proto package `sayiir.persistence.v1` would generate a top-level `sayiir`
import package, which would collide with the `sayiir` SDK on PyPI; the output is
therefore moved to `sayiir_client.v1` and its imports are rewritten.

The `.proto` files are copied into `sayiir_client/proto/` (same layout as `proto/`,
so it works as an include path): the client distribution ships them as package
data, and a distribution can only ship files under its own directory. The drift
check covers the copy too.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_PACKAGE_DIR = PROTO_ROOT / "sayiir" / "persistence" / "v1"
TARGET = ROOT / "client" / "sayiir_client" / "v1"
PROTO_TARGET = ROOT / "client" / "sayiir_client" / "proto"
PYTHON_PACKAGE = "sayiir_client.v1"
_IMPORT = re.compile(r"\bsayiir\.persistence\.v1(?=\s+import\b|\.\w+_pb2\b)")
_BIN = Path(sys.executable).parent
_INIT = '"""Generated from proto/sayiir/persistence/v1 by `make proto`; do not edit."""\n'


def generate(out_dir: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_PACKAGE_DIR.glob("*.proto"))
    with tempfile.TemporaryDirectory() as raw:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"--plugin=protoc-gen-mypy={_BIN / 'protoc-gen-mypy'}",
                f"--plugin=protoc-gen-mypy_grpc={_BIN / 'protoc-gen-mypy_grpc'}",
                f"--python_out={raw}",
                f"--grpc_python_out={raw}",
                f"--mypy_out=quiet:{raw}",
                f"--mypy_grpc_out=quiet:{raw}",
                *protos,
            ],
            check=True,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        for generated in sorted((Path(raw) / "sayiir" / "persistence" / "v1").iterdir()):
            if "_grpc" in generated.name and not generated.name.startswith("service"):
                continue  # only service.proto declares services
            text = _IMPORT.sub(PYTHON_PACKAGE, generated.read_text())
            (out_dir / generated.name).write_text(text)
    (out_dir / "__init__.py").write_text(_INIT)
    (out_dir / "py.typed").write_text("")


def copy_protos(out_dir: Path) -> None:
    for proto in sorted(PROTO_PACKAGE_DIR.glob("*.proto")):
        copy = out_dir / proto.relative_to(PROTO_ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(proto, copy)


def _files(root: Path) -> set[str]:
    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _differences(fresh: Path, committed: Path, label: str) -> list[str]:
    fresh_names, committed_names = _files(fresh), _files(committed)
    problems = [f"missing: {label}{n}" for n in sorted(fresh_names - committed_names)]
    problems += [f"unexpected: {label}{n}" for n in sorted(committed_names - fresh_names)]
    problems += [
        f"differs: {label}{n}"
        for n in sorted(fresh_names & committed_names)
        if not filecmp.cmp(fresh / n, committed / n, shallow=False)
    ]
    return problems


def drifted(committed: Path, committed_protos: Path = PROTO_TARGET) -> list[str]:
    with tempfile.TemporaryDirectory() as fresh_dir:
        fresh = Path(fresh_dir)
        generate(fresh / "v1")
        copy_protos(fresh / "proto")
        return _differences(fresh / "v1", committed, "") + _differences(fresh / "proto", committed_protos, "proto/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="fail when the committed code differs from a fresh generation"
    )
    parser.add_argument("--target", type=Path, default=TARGET)
    parser.add_argument("--proto-target", type=Path, default=PROTO_TARGET)
    args = parser.parse_args()
    if args.check:
        problems = drifted(args.target, args.proto_target)
        for problem in problems:
            print(f"generated code drift: {problem} (run `make proto`)", file=sys.stderr)
        return 1 if problems else 0
    shutil.rmtree(args.target, ignore_errors=True)
    generate(args.target)
    shutil.rmtree(args.proto_target, ignore_errors=True)
    copy_protos(args.proto_target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
