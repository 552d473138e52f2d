"""What the two distributions declare: one version, dependency ranges around the pins of constraints.txt,
every installed dependency pinned, dependencies that match the imports, the licence and build backend."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

import sayiir_client
import sayiir_server
from tests.packaging.venvs import ROOT, constraint_pins

CLIENT = "sayiir-persistence-client"
SERVER = "sayiir-persistence-server"
SOURCE_DIRECTORIES = {CLIENT: ROOT / "client", SERVER: ROOT / "server"}
PACKAGES = {CLIENT: "sayiir_client", SERVER: "sayiir_server"}
REQUIREMENTS_DEV = ROOT / "requirements-dev.txt"


def _project(distribution: str) -> dict[str, Any]:
    with (SOURCE_DIRECTORIES[distribution] / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def _dependencies(distribution: str, *, extras: bool = True) -> list[Requirement]:
    project = _project(distribution)["project"]
    texts = list(project["dependencies"])
    if extras:
        texts += [text for group in project.get("optional-dependencies", {}).values() for text in group]
    return [Requirement(text) for text in texts]


def _third_party_dependencies() -> list[Requirement]:
    return [req for dist in (CLIENT, SERVER) for req in _dependencies(dist) if canonicalize_name(req.name) != CLIENT]


def _requirements_dev() -> list[Requirement]:
    lines = (line.strip() for line in REQUIREMENTS_DEV.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


# --- one version ------------------------------------------------------------------------------------------------


def test_one_version_for_both_distributions_the_image_and_the_changelog() -> None:
    version = sayiir_client.__version__
    assert sayiir_server.__version__ == version
    for distribution in (CLIENT, SERVER):
        assert importlib.metadata.version(distribution) == version, "installed metadata is stale: make install"
        assert _project(distribution)["project"]["dynamic"] == ["version"]  # read from the package's __version__
    (client_requirement,) = [r for r in _dependencies(SERVER) if canonicalize_name(r.name) == CLIENT]
    assert str(client_requirement.specifier) == f"=={version}"  # lockstep: the client of the same release

    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"sayiir-persistence-server:{version}"
    assert f"docker build -t sayiir-persistence-server:{version} ." in (ROOT / "Dockerfile").read_text()

    releases = re.findall(r"^## \[?(\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert releases[0] == version


# --- ranges and pins --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("requirement", _third_party_dependencies(), ids=str)
def test_each_runtime_dependency_is_a_range_from_a_tested_version_to_the_next_major(requirement: Requirement) -> None:
    bounds = {spec.operator: Version(spec.version) for spec in requirement.specifier}
    assert set(bounds) == {">=", "<"}, f"{requirement}: want >=TESTED,<NEXT_MAJOR"
    floor = bounds[">="]
    assert bounds["<"] == Version(str(floor.major + 1))
    pinned = constraint_pins()[canonicalize_name(requirement.name)]
    assert floor <= pinned
    assert requirement.specifier.contains(pinned, prereleases=True)


def test_a_dependency_of_both_distributions_has_the_same_range_in_both() -> None:
    client = {canonicalize_name(r.name): r.specifier for r in _dependencies(CLIENT)}
    server = {canonicalize_name(r.name): r.specifier for r in _dependencies(SERVER)}
    assert {name: server[name] for name in client.keys() & server.keys()} == {
        name: client[name] for name in client.keys() & server.keys()
    }


def test_requirements_dev_names_tools_without_versions() -> None:
    for requirement in _requirements_dev():
        assert not requirement.specifier, f"{requirement}: versions belong in constraints.txt"


def _closure(roots: Iterable[Requirement]) -> dict[NormalizedName, set[str]]:
    """Every installed distribution the roots need (with the extras asked for), by canonical name."""
    needed: dict[NormalizedName, set[str]] = {}
    queue = list(roots)
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name in needed and set(requirement.extras) <= needed[name]:
            continue
        extras = needed.setdefault(name, set())
        extras.update(requirement.extras)
        for text in importlib.metadata.requires(name) or ():
            dependency = Requirement(text)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in {"", *extras}):
                queue.append(dependency)
    return needed


def test_every_distribution_make_install_needs_is_pinned_and_installed_at_its_pin() -> None:
    roots = [Requirement(f"{CLIENT}[console]"), Requirement(f"{SERVER}[tracing]"), *_requirements_dev()]
    needed = set(_closure(roots)) - {CLIENT, SERVER}
    assert needed - constraint_pins().keys() == set(), "add these to constraints.txt"
    drifted = {
        name: importlib.metadata.version(name)
        for name in needed
        if importlib.metadata.version(name) != str(constraint_pins()[name])
    }
    assert drifted == {}, "installed versions differ from constraints.txt: make install"


# --- dependencies match the imports -----------------------------------------------------------------------------


def _imported_modules(package_dir: Path) -> Iterator[str]:
    """Every absolute import of the package's modules (generated code included): `a.b` of `from a.b import c`."""
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield node.module


@cache
def _file_owners() -> dict[str, NormalizedName]:
    """Every installed file (normalized absolute path) and the distribution that installed it."""
    owners: dict[str, NormalizedName] = {}
    for distribution in importlib.metadata.distributions():
        name = canonicalize_name(distribution.metadata["Name"])
        for file in distribution.files or ():
            owners[os.path.normpath(str(distribution.locate_file(file)))] = name
    return owners


def _owners(module: str) -> set[NormalizedName]:
    """The installed distributions a third-party module comes from (none for the standard library)."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "__future__":
        return set()
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"cannot locate {module}"
    if spec.origin is not None:
        files = [os.path.normpath(spec.origin)]
    else:  # a namespace package (google.rpc): whoever installed files into it
        roots = [os.path.normpath(location) + os.sep for location in spec.submodule_search_locations or ()]
        files = [path for path in _file_owners() if path.startswith(tuple(roots))]
    owners = {owner for path in files if (owner := _file_owners().get(path)) is not None}
    assert owners, f"no installed distribution owns {module} ({spec.origin})"
    return owners


@pytest.mark.parametrize("distribution", [CLIENT, SERVER])
def test_a_distribution_requires_what_its_code_imports_and_nothing_else(distribution: str) -> None:
    package = PACKAGES[distribution]
    imported = {
        module
        for module in _imported_modules(SOURCE_DIRECTORIES[distribution] / package)
        if not module.startswith(package)
    }
    if distribution == SERVER:
        imported = {module for module in imported if not module.startswith("sayiir_client")}
    owners = {owner for module in imported for owner in _owners(module)}
    declared = {canonicalize_name(r.name) for r in _dependencies(distribution)} - {CLIENT}
    required = {canonicalize_name(r.name) for r in _dependencies(distribution, extras=False)} - {CLIENT}
    assert owners - declared == set(), "imported but not declared"
    assert required - owners == set(), "required but never imported"  # an extra's modules may load by name


# --- licence and build backend ----------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", [CLIENT, SERVER])
def test_each_distribution_carries_the_mit_licence_file(distribution: str) -> None:
    project = _project(distribution)["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    licence = (SOURCE_DIRECTORIES[distribution] / "LICENSE").read_text()
    assert licence == (ROOT / "LICENSE").read_text(), "client/LICENSE and server/LICENSE are copies of LICENSE"
    assert licence.startswith("MIT License")


def test_both_distributions_pin_the_same_build_backend() -> None:
    systems = [_project(distribution)["build-system"] for distribution in (CLIENT, SERVER)]
    assert systems[0] == systems[1]
    (backend,) = systems[0]["requires"]
    assert str(Requirement(backend).specifier).startswith("==")
