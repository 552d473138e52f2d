"""`python worker_check.py ADDRESS`, run by test_wheels.py in a virtualenv that holds the client wheel alone.

It checks what a worker gets from `pip install sayiir-persistence-client` (the client, its generated code
and .proto files, none of the server and its drivers) and makes one round trip to the server at ADDRESS.
Prints `VERSION INSTANCE_ID STATE` on success.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import sys

SERVER_ONLY_MODULES = ("sayiir_server", "asyncpg", "prometheus_client", "grpc_reflection", "opentelemetry")
SERVER_ONLY_DISTRIBUTIONS = {"sayiir-persistence-server", "asyncpg", "prometheus-client", "grpcio-reflection"}
PROTO_FILES = ["enums.proto", "error_details.proto", "messages.proto", "request_response.proto", "service.proto"]


def main(address: str) -> None:
    for module in SERVER_ONLY_MODULES:
        assert importlib.util.find_spec(module) is None, f"{module} is importable next to the client alone"
    installed = {str(dist.metadata["Name"]).lower() for dist in importlib.metadata.distributions()}
    assert not installed & SERVER_ONLY_DISTRIBUTIONS, sorted(installed & SERVER_ONLY_DISTRIBUTIONS)

    from sayiir_client import DefinitionHash, PersistenceClient, TaskId, __version__
    from sayiir_client.v1 import messages_pb2 as pb

    assert importlib.metadata.version("sayiir-persistence-client") == __version__
    package = importlib.resources.files("sayiir_client")
    assert package.joinpath("py.typed").is_file()
    assert package.joinpath("v1", "messages_pb2.pyi").is_file()
    protos = package.joinpath("proto", "sayiir", "persistence", "v1")
    assert sorted(entry.name for entry in protos.iterdir() if entry.name.endswith(".proto")) == PROTO_FILES

    with PersistenceClient(address) as client:
        client.check_health()
        client.prepare_run(
            "wheel-1", DefinitionHash.from_name("wheel/v1"), b"input", pb.FirstTask(task_id=TaskId.from_name("first"))
        )
        snapshot = client.load_snapshot("wheel-1")
    print(__version__, snapshot.instance_id, snapshot.WhichOneof("state"))


if __name__ == "__main__":
    main(sys.argv[1])
