"""sayiir-conformance: the behaviour rules of docs/behaviour.md, checked black-box against any server.

The kit talks to `--target` through the generated stubs of `sayiir.persistence.v1`
only (no server code), so it checks any implementation of the contract, in any
language. Each check is named by the rule id it observes; a failure says what was
sent, what came back and what the rule expects. Run `sayiir-conformance --help`.
"""

from sayiir_client.conformance._kit import REGISTRY, Check
from sayiir_client.conformance.cli import main

__all__ = ["REGISTRY", "Check", "main"]
