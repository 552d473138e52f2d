"""deploy/kubernetes agrees with the CLI: flag names (as SAYIIR_* variables), ports, probes and default limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sayiir_server.api.server import LIVENESS_SERVICE_NAME
from sayiir_server.cli import SERVE_FLAGS, build_parser, resolve_flags
from sayiir_server.mesh.metrics import DEFAULT_METRICS_PORT, parse_listen

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
FLAGS_BY_ENV_VAR = {flag.env_var: flag for flag in SERVE_FLAGS}
RESTATED_DEFAULTS = (
    "max-message-bytes",
    "max-concurrent-streams",
    "keepalive-min-ping-interval",
    "keepalive-time",
    "max-wait-timeout",
    "grace-period",
    "health-check-interval",
)
"""Limits the ConfigMap spells out: they must equal the CLI's defaults."""


def _documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        documents += [document for document in yaml.safe_load_all(path.read_text()) if document]
    return documents


def _one(kind: str) -> dict[str, Any]:
    (document,) = [document for document in _documents() if document["kind"] == kind]
    return document


def _container() -> dict[str, Any]:
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _container_port(name: str) -> int:
    (port,) = [port["containerPort"] for port in _container()["ports"] if port["name"] == name]
    return int(port)


def _settings() -> dict[str, str]:
    data: dict[str, str] = _one("ConfigMap")["data"]
    return data


def _cli_default_port() -> int:
    return parse_listen(FLAGS_BY_ENV_VAR["SAYIIR_LISTEN"].default)[1]


def test_the_kustomization_lists_every_manifest() -> None:
    (kustomization,) = [document for document in _documents() if document["kind"] == "Kustomization"]
    manifests = {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_every_configmap_key_is_the_environment_variable_of_a_serve_flag() -> None:
    assert set(_settings()) <= set(FLAGS_BY_ENV_VAR)


def test_every_configmap_value_is_accepted_by_the_cli() -> None:
    arguments = build_parser().parse_args(["serve"])
    resolve_flags(arguments, _settings())  # raises on a value the CLI refuses


def test_every_sayiir_variable_of_the_container_is_a_serve_flag() -> None:
    names = {variable["name"] for variable in _container().get("env", ())}
    assert {name for name in names if name.startswith("SAYIIR_")} <= set(FLAGS_BY_ENV_VAR)
    assert "SAYIIR_BACKEND" in names  # from a Secret: a PostgreSQL URL holds a password


def test_the_container_runs_serve_with_known_flags_only() -> None:
    container = _container()
    assert container["command"] == ["sayiir-server"]
    assert container["args"][0] == "serve"
    options = {argument.split("=")[0] for argument in container["args"] if argument.startswith("--")}
    assert options <= {flag.option for flag in SERVE_FLAGS}


@pytest.mark.parametrize("flag", RESTATED_DEFAULTS)
def test_the_configmap_restates_the_default_limits(flag: str) -> None:
    (spec,) = [candidate for candidate in SERVE_FLAGS if candidate.name == flag]
    assert spec.env_var in _settings()
    assert spec.parse(_settings()[spec.env_var]) == spec.default


def test_grpc_listens_on_the_cli_default_port_on_every_interface() -> None:
    host, port = parse_listen(_settings()["SAYIIR_LISTEN"])
    assert (host, port) == ("0.0.0.0", _cli_default_port())
    assert _container_port("grpc") == port


def test_metrics_listen_on_the_documented_port() -> None:
    host, port = parse_listen(_settings()["SAYIIR_METRICS_LISTEN"])
    assert (host, port) == ("0.0.0.0", DEFAULT_METRICS_PORT)
    assert _container_port("metrics") == port
    annotations = _one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probes_are_native_grpc_health_checks_on_the_grpc_port(probe: str) -> None:
    check = _container()[probe]
    assert check["grpc"]["port"] == _container_port("grpc")
    assert not {"httpGet", "tcpSocket", "exec"} & set(check)


def test_readiness_asks_the_servers_overall_health_which_follows_the_backend() -> None:
    assert "service" not in _container()["readinessProbe"]["grpc"]  # "": NOT_SERVING while storage is down


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe"])
def test_startup_and_liveness_ask_the_process_only_name_so_an_outage_restarts_no_pod(probe: str) -> None:
    assert _container()[probe]["grpc"]["service"] == LIVENESS_SERVICE_NAME


def test_the_service_exposes_grpc_with_its_app_protocol_and_the_metrics_port() -> None:
    service = _one("Service")
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc"
    assert ports["grpc"]["port"] == _cli_default_port()
    assert ports["metrics"]["port"] == DEFAULT_METRICS_PORT
    container_port_names = {port["name"] for port in _container()["ports"]}
    assert {port["targetPort"] for port in ports.values()} <= container_port_names


def test_the_service_selects_the_deployments_pods() -> None:
    pod_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = _one("Service")["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert _one("Deployment")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_the_token_file_lies_in_a_mounted_secret() -> None:
    token_file = _settings()["SAYIIR_AUTH_TOKENS"]
    mounts = {mount["name"]: mount["mountPath"] for mount in _container()["volumeMounts"]}
    (volume,) = [
        volume
        for volume in _one("Deployment")["spec"]["template"]["spec"]["volumes"]
        if token_file.startswith(mounts.get(volume["name"], "//") + "/")
    ]
    assert "secret" in volume


def test_the_pod_may_drain_longer_than_the_grace_period() -> None:
    (grace,) = [flag for flag in SERVE_FLAGS if flag.name == "grace-period"]
    termination = _one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert termination > grace.parse(_settings()[grace.env_var]).total_seconds()
