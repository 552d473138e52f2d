"""Start runs of the three-step workflow: prepare_run for each ID=INPUT.

    python -m examples.three_step_workflow.starter --target HOST:PORT --run order-1=3,1,2 [--run ...]

Prints one JSON line per run: {"instance", "outcome"} ("fresh", or "existing_status" for a known id).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from examples.three_step_workflow.workflow import DEFINITION, first_task
from sayiir_client import AsyncPersistenceClient
from sayiir_client.v1 import enums_pb2 as enums


async def start(target: str, runs: Sequence[tuple[str, bytes]]) -> None:
    async with AsyncPersistenceClient(target) as client:
        for instance_id, run_input in runs:
            # USE_EXISTING makes starting idempotent: a second start reports the run instead of failing.
            outcome = await client.prepare_run(
                instance_id, DEFINITION, run_input, first_task(), enums.CONFLICT_POLICY_USE_EXISTING
            )
            print(json.dumps({"instance": instance_id, "outcome": outcome.WhichOneof("outcome")}), flush=True)


def parse_run(text: str) -> tuple[str, bytes]:
    instance_id, separator, run_input = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"expected ID=INPUT, got {text!r}")
    return instance_id, run_input.encode()


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="HOST:PORT of sayiir-server")
    parser.add_argument("--run", type=parse_run, action="append", required=True, metavar="ID=INPUT")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_arguments(sys.argv[1:])
    asyncio.run(start(arguments.target, arguments.run))
