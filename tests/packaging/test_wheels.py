"""The two distributions as a user gets them: built (sdist, then the wheel from it), installed into fresh
virtualenvs outside the repository, the client wheel alone for a worker, the server wheel for `serve`."""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from sayiir_client import PersistenceClient, __version__
from tests.packaging.venvs import ROOT, clean_environment, create_venv, pip_install, run
from tests.support.server_process import server_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DISTRIBUTIONS = {
    "client": ("sayiir_persistence_client", "sayiir_client"),
    "server": ("sayiir_persistence_server", "sayiir_server"),
}
"""Source directory: (wheel name prefix, import package)."""
_BUILD_LEFTOVERS = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`python -m build` of each distribution from a copy of its directory (the repository stays untouched)."""
    work = tmp_path_factory.mktemp("wheels")
    built: dict[str, Path] = {}
    for directory, (prefix, _) in DISTRIBUTIONS.items():
        source = work / "src" / directory
        shutil.copytree(ROOT / directory, source, ignore=_BUILD_LEFTOVERS)
        run([sys.executable, "-m", "build", "--outdir", work / "dist", source], cwd=work)
        (wheel,) = (work / "dist").glob(f"{prefix}-*.whl")
        built[directory] = wheel
    return built


def _package_files(package_dir: Path) -> set[str]:
    return {
        path.relative_to(package_dir.parent).as_posix()
        for path in package_dir.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize("directory", sorted(DISTRIBUTIONS))
def test_each_wheel_ships_every_file_of_its_package_and_the_licence(wheels: dict[str, Path], directory: str) -> None:
    _, package = DISTRIBUTIONS[directory]
    with zipfile.ZipFile(wheels[directory]) as wheel:
        names = set(wheel.namelist())
    assert _package_files(ROOT / directory / package) <= names  # migrations, .pyi, py.typed, .proto included
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {package}
    (licence,) = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
    with zipfile.ZipFile(wheels[directory]) as wheel:
        assert wheel.read(licence) == (ROOT / "LICENSE").read_bytes()


def test_the_client_wheel_alone_gives_a_worker_what_it_needs_and_nothing_of_the_server(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    bin_dir = create_venv(tmp_path / "worker-venv")
    pip_install(bin_dir, wheels["client"])
    run([bin_dir / "python", "-m", "pip", "check"], cwd=tmp_path)
    script = tmp_path / "worker_check.py"
    shutil.copyfile(Path(__file__).with_name("worker_check.py"), script)  # run from outside the repository

    with server_process() as server:
        result = run([bin_dir / "python", script, server.address], cwd=tmp_path)
        # The conformance kit needs nothing of the server either (its exit code 0: every selected check passed).
        kit = run([bin_dir / "sayiir-conformance", "--target", server.address, "--rules", "SNAP-*"], cwd=tmp_path)
        listed = run(
            [bin_dir / "sayiirctl", "workflow", "list", "-o", "json", "--server", server.address], cwd=tmp_path
        )

    assert result.stdout.split() == [__version__, "wheel-1", "in_progress"]
    assert "passed" in kit.stdout
    assert '"instance_id": "wheel-1"' in listed.stdout  # the operator's sayiirctl comes with the worker's package


def test_the_server_wheel_serves_from_its_own_virtualenv(wheels: dict[str, Path], tmp_path: Path) -> None:
    bin_dir = create_venv(tmp_path / "server-venv")
    pip_install(bin_dir, wheels["server"], wheels["client"])
    run([bin_dir / "python", "-m", "pip", "check"], cwd=tmp_path)
    version = run([bin_dir / "sayiir-server", "--version"], cwd=tmp_path)
    assert version.stdout.split() == ["sayiir-server", __version__]
    imported = run([bin_dir / "python", "-c", "import sayiir_server; print(sayiir_server.__file__)"], cwd=tmp_path)
    assert Path(imported.stdout.strip()).is_relative_to(bin_dir.parent)

    command = [str(bin_dir / "sayiir-server"), "serve"]
    with (
        server_process("memory://", command=command, env=clean_environment(), cwd=tmp_path) as server,
        PersistenceClient(server.address) as client,
    ):
        client.check_health()
