"""The Dockerfile, checked without a container engine (`make lint` runs hadolint on it).

Read with BuildKit's own parser (the `dockerfile` package): it agrees with the Kubernetes manifests and
the CLI (command, ports, user, `SAYIIR_*` variables), and its RUN steps, executed as written in a clean
virtualenv standing in for the slim Python base, build an image file system that serves from its
virtualenv, with its SQLite default, without writing anywhere but its data directory.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml
from packaging.utils import canonicalize_name, parse_wheel_filename

from sayiir_client import DefinitionHash, PersistenceClient, TaskId
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.cli import SERVE_FLAGS, build_parser, resolve_flags
from tests.packaging.venvs import COMMAND_TIMEOUT_SECONDS, ROOT, clean_environment, constraint_pins, create_venv
from tests.support.server_process import server_process

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MANIFESTS = ROOT / "deploy" / "kubernetes"
FLAGS_BY_ENV_VAR = {flag.env_var: flag for flag in SERVE_FLAGS}
INSTALL_COMMANDS = {"python", "pip"}
"""A RUN step that calls these (or a virtualenv's) installs: the test executes it as written."""
SETUP_COMMANDS = {"mkdir", "chown", "chmod"}
"""The only commands another RUN step may hold; those are not executed here (chown needs root)."""
_ABSOLUTE_PATH = re.compile(r"(?:^|[\s='\"])/")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_SQLITE = "sqlite:///"


@dataclass(frozen=True)
class Instruction:
    command: str
    flags: tuple[str, ...]
    value: tuple[str, ...]
    line: int


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, command: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.command == command]

    def one(self, command: str) -> Instruction:
        (instruction,) = self.all(command)
        return instruction

    def arg_default(self, name: str) -> str:
        defaults = dict(i.value[0].partition("=")[::2] for i in self.all("ARG"))
        return defaults[name]

    def env(self) -> dict[str, str]:
        """The ENV values as written (unexpanded, unquoted)."""
        return {key: _unquote(raw) for instruction in self.all("ENV") for key, raw in _pairs(instruction.value)}


def _instructions() -> list[Instruction]:
    parsed: tuple[Any, ...] = dockerfile.parse_file(str(DOCKERFILE))
    return [Instruction(c.cmd.upper(), tuple(c.flags), tuple(c.value), int(c.start_line)) for c in parsed]


def _stages() -> tuple[list[Instruction], dict[str, Stage]]:
    """The global instructions (ARGs before the first FROM) and each stage by name, in order."""
    preamble: list[Instruction] = []
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction in _instructions():
        if instruction.command == "FROM":
            base, as_, name = instruction.value
            assert as_.upper() == "AS"
            current = stages[name] = Stage(name, base)
        elif current is None:
            preamble.append(instruction)
        else:
            current.instructions.append(instruction)
    return preamble, stages


def _pairs(value: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    yield from zip(value[::2], value[1::2], strict=True)


def _unquote(word: str) -> str:
    return word[1:-1] if len(word) >= 2 and word[0] == word[-1] == '"' else word


def _expand(word: str, env: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda match: env.get(match.group(1) or match.group(2), ""), _unquote(word))


def _commands(run: Instruction) -> list[list[str]]:
    """A RUN step's commands (split at &&), as words."""
    return [shlex.split(part) for part in run.value[0].split("&&")]


def _is_install_step(run: Instruction) -> bool:
    return any(Path(_expand(words[0], {})).name in INSTALL_COMMANDS for words in _commands(run))


def _deployment_container() -> dict[str, Any]:
    deployment = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _configmap() -> dict[str, str]:
    data: dict[str, str] = yaml.safe_load((MANIFESTS / "configmap.yaml").read_text())["data"]
    return data


def _port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


# --- what the file says -----------------------------------------------------------------------------------------


def test_two_stages_build_and_runtime_on_one_slim_python_base() -> None:
    preamble, stages = _stages()
    assert list(stages) == ["build", "runtime"]
    (base_arg,) = [i for i in preamble if i.command == "ARG"]
    name, _, image = base_arg.value[0].partition("=")
    assert {stage.base for stage in stages.values()} == {f"${{{name}}}"}
    assert re.fullmatch(r"python:3\.11[.\d]*-slim[-\w]*", image), image  # requires-python >= 3.11, tested on 3.11


def test_the_image_runs_what_the_deployment_runs() -> None:
    runtime = _stages()[1]["runtime"]
    container = _deployment_container()
    assert list(runtime.one("ENTRYPOINT").value) == container["command"]
    assert list(runtime.one("CMD").value) == container["args"]


def test_the_image_runs_as_the_non_root_user_of_the_deployment() -> None:
    runtime = _stages()[1]["runtime"]
    user, _, group = runtime.one("USER").value[0].partition(":")
    assert int(user) != 0
    assert int(group) != 0
    context = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    assert (int(user), int(group)) == (
        context["securityContext"]["runAsUser"],
        context["securityContext"]["runAsGroup"],
    )


def test_every_sayiir_variable_of_the_image_is_a_serve_flag_the_cli_accepts() -> None:
    settings = {key: value for key, value in _stages()[1]["runtime"].env().items() if key.startswith("SAYIIR_")}
    assert set(settings) <= set(FLAGS_BY_ENV_VAR)
    resolve_flags(build_parser().parse_args(["serve"]), settings)  # raises on a value the CLI refuses
    configmap = _configmap()
    assert {key: configmap[key] for key in settings.keys() & configmap.keys()} == {
        key: settings[key] for key in settings.keys() & configmap.keys()
    }


def test_the_image_exposes_the_grpc_and_metrics_ports_it_listens_on_and_the_deployment_names() -> None:
    runtime = _stages()[1]["runtime"]
    settings = runtime.env()
    listened = [_port(settings["SAYIIR_LISTEN"]), _port(settings["SAYIIR_METRICS_LISTEN"])]
    assert [int(port) for port in runtime.one("EXPOSE").value] == listened
    ports = {port["name"]: port["containerPort"] for port in _deployment_container()["ports"]}
    assert [ports["grpc"], ports["metrics"]] == listened


def test_the_sqlite_default_lives_in_the_volume_the_user_owns_and_nothing_else_is_written() -> None:
    runtime = _stages()[1]["runtime"]
    backend = runtime.env()["SAYIIR_BACKEND"]
    assert backend.startswith(_SQLITE + "/")
    data_dir = posixpath.dirname(backend.removeprefix(_SQLITE))
    assert runtime.one("WORKDIR").value == (data_dir,)
    assert runtime.one("VOLUME").value == (data_dir,)
    setup = [words for run in runtime.all("RUN") if not _is_install_step(run) for words in _commands(run)]
    assert ["chown", runtime.one("USER").value[0], data_dir] in setup
    assert runtime.env()["PYTHONDONTWRITEBYTECODE"] == "1"  # no __pycache__ on a read-only root file system
    run_lines = [run.line for run in runtime.all("RUN")]
    assert max(run_lines) < runtime.one("VOLUME").line < runtime.one("USER").line  # chown before VOLUME and USER


def test_other_run_steps_only_create_directories() -> None:
    for stage in _stages()[1].values():
        for run in stage.all("RUN"):
            if not _is_install_step(run):
                assert {words[0] for words in _commands(run)} <= SETUP_COMMANDS, run


def test_install_steps_name_every_path_through_a_variable() -> None:
    """So the test below runs them as written, with the variables pointing into a temporary directory."""
    for stage in _stages()[1].values():
        for run in stage.all("RUN"):
            if _is_install_step(run):
                assert not _ABSOLUTE_PATH.search(run.value[0]), run


def test_the_build_context_is_what_the_dockerfile_copies() -> None:
    sources = {
        source.rstrip("/")
        for stage in _stages()[1].values()
        for copy in stage.all("COPY")
        for source in copy.value[:-1]
    }
    lines = [line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {line[1:].rstrip("/") for line in lines if line.startswith("!")} == sources
    assert all(line.startswith(("!", "**/")) for line in lines[1:])


# --- its steps, executed ----------------------------------------------------------------------------------------


class ImageBuild:
    """Runs the Dockerfile's stages into a directory per stage, each standing in for that stage's root file system."""

    def __init__(self, work: Path, base_bin: Path) -> None:
        self.work = work
        self.base_env = clean_environment(PATH=f"{base_bin}:{clean_environment()['PATH']}")
        self.ignored = [
            line.removeprefix("**/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("**/")
        ]

    def root(self, stage: str) -> Path:
        return self.work / stage

    def path(self, stage: str, container_path: str) -> Path:
        assert container_path.startswith("/"), container_path
        return self.root(stage) / container_path.lstrip("/")

    def run_stage(self, stage: Stage) -> tuple[dict[str, str], str]:
        """Execute the stage; returns its environment (host paths) and working directory (container path)."""
        env = dict(self.base_env)
        workdir = "/"
        self.root(stage.name).mkdir(parents=True)
        for instruction in stage.instructions:
            if instruction.command == "ARG":
                name, _, default = instruction.value[0].partition("=")
                env[name] = self._value(stage.name, default, env)
            elif instruction.command == "ENV":
                for key, raw in _pairs(instruction.value):
                    env[key] = self._value(stage.name, raw, env)
            elif instruction.command == "WORKDIR":
                workdir = posixpath.join(workdir, _expand(instruction.value[0], env))
                self.path(stage.name, workdir).mkdir(parents=True, exist_ok=True)
            elif instruction.command == "COPY":
                self._copy(stage.name, instruction, workdir)
            elif instruction.command == "RUN" and _is_install_step(instruction):
                self._mount(stage.name, instruction)
                result = subprocess.run(
                    ["/bin/sh", "-c", instruction.value[0]],
                    cwd=self.path(stage.name, workdir),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT_SECONDS,
                    check=False,
                )
                assert result.returncode == 0, f"Dockerfile:{instruction.line}:\n{result.stdout}\n{result.stderr}"
        return env, workdir

    def _value(self, stage: str, raw: str, env: Mapping[str, str]) -> str:
        value = _expand(raw, env)
        return str(self.path(stage, value)) if _unquote(raw).startswith("/") else value

    def _copy(self, stage: str, copy: Instruction, workdir: str) -> None:
        assert not copy.flags, "COPY --from/--chown: not emulated"
        *sources, destination = copy.value
        target = self.path(stage, posixpath.join(workdir, destination))
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*self.ignored))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, target / origin.name)

    def _mount(self, stage: str, run: Instruction) -> None:
        for flag in run.flags:
            options = dict(option.partition("=")[::2] for option in flag.removeprefix("--mount=").split(","))
            assert options["type"] == "bind", flag
            mount_point = self.path(stage, options["target"])
            mount_point.parent.mkdir(parents=True, exist_ok=True)
            mount_point.symlink_to(self.path(options["from"], options["source"]), target_is_directory=True)


def _files(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path): (path.lstat().st_mtime_ns, path.lstat().st_size)
        for path in root.rglob("*")
        if not path.is_relative_to(skip)
    }


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_install_steps_build_an_image_that_serves_and_writes_only_its_data_directory(tmp_path: Path) -> None:
    _, stages = _stages()
    build = ImageBuild(tmp_path / "image", create_venv(tmp_path / "python-base"))
    build.run_stage(stages["build"])

    wheels = build.path("build", stages["build"].arg_default("WHEELS"))
    collected = {name: version for name, version, *_ in (parse_wheel_filename(p.name) for p in wheels.glob("*.whl"))}
    ours = {canonicalize_name("sayiir-persistence-client"), canonicalize_name("sayiir-persistence-server")}
    assert ours <= collected.keys()
    theirs = collected.keys() - ours
    assert {name: collected[name] for name in theirs} == {name: constraint_pins()[name] for name in theirs}

    runtime = stages["runtime"]
    env, workdir = build.run_stage(runtime)
    venv = Path(env["VIRTUAL_ENV"])
    tracing = subprocess.run([venv / "bin" / "python", "-c", "import opentelemetry.instrumentation.grpc"], check=False)
    assert tracing.returncode == 0, "the image lacks the tracing extra"

    entrypoint = shutil.which(runtime.one("ENTRYPOINT").value[0], path=env["PATH"])
    assert entrypoint is not None
    assert Path(entrypoint).is_relative_to(venv)
    data_dir = build.path("runtime", workdir)
    backend = _SQLITE + str(build.path("runtime", env["SAYIIR_BACKEND"].removeprefix(_SQLITE)))
    before = _files(build.root("runtime"), skip=data_dir)
    with (
        server_process(
            backend,
            command=[entrypoint, *runtime.one("CMD").value],
            env=env | {"SAYIIR_METRICS_LISTEN": "127.0.0.1:0"},
            cwd=data_dir,
        ) as server,
        PersistenceClient(server.address) as client,
    ):
        client.check_health()
        client.prepare_run(
            "image-1", DefinitionHash.from_name("image/v1"), b"", pb.FirstTask(task_id=TaskId.from_name("a"))
        )
        assert client.load_snapshot("image-1").instance_id == "image-1"
        assert server.metrics_url is not None
        with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
            assert b"sayiir_server_info" in response.read()

    assert (data_dir / "sayiir.db").is_file()
    assert _files(build.root("runtime"), skip=data_dir) == before
