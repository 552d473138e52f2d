"""The README's sayiirctl session: `python -m tests.ctl.readme_transcript` prints it, run for real.

Starts `sayiir-server serve` on a fresh SQLite file, saves three workflows (a worker holds one of them), then
runs each command of the session as a process, with TZ=UTC, and prints the commands and what they printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sayiir_client import DefinitionHash, PersistenceClient
from tests.console import seed
from tests.support.server_process import server_process

SESSION = (
    "workflow list",
    "workflow list --state in_progress --tag eu -o json",
    "workflow show order-1001",
    "task result order-1001 fetch",
    'workflow pause order-1002 --reason "card processor maintenance"',
    "workflow list --state in_progress",
    "workflow list --state paused",
    'event send order-1001 approved --payload "yes"',
    "workflow cancel order-1003",
    "workflow show order-9999",
    "run start order-1002 --definition orders/v1 --first-task fetch",
    "workflow list --server 127.0.0.1:1 --timeout 2",
)


ORDERS = DefinitionHash.from_name("orders/v1")


def _scene(client: PersistenceClient) -> None:
    fetched = (("fetch", b'{"sku": 42, "price": 1999}'),)
    seed.save(
        client,
        seed.at_task("order-1002", "fetch", priority=1, definition=ORDERS),
        seed.at_task("order-1001", "charge-card", done=fetched, tags=("eu",), definition=ORDERS),
        seed.completed("order-1003", definition=ORDERS),
    )
    seed.claim(client, "order-1001", "worker-eu-1")


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, server_process(f"sqlite:///{directory}/ops.db") as server:
        with PersistenceClient(server.address) as client:
            _scene(client)
        environment = os.environ | {"TZ": "UTC", "SAYIIR_SERVER": server.address, "USER": "ops"}
        for command in SESSION:
            print(f"$ sayiirctl {command}")
            ran = subprocess.run(
                f"{Path(sys.executable).parent / 'sayiirctl'} {command}",
                shell=True,
                env=environment,
                capture_output=True,
                text=True,
                check=False,
            )
            printed = ran.stdout + ran.stderr
            sys.stdout.write(printed if printed.endswith("\n") else printed + "\n")
            if ran.returncode:
                print(f"$ echo $?\n{ran.returncode}")


if __name__ == "__main__":
    main()
