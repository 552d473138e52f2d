"""The README's picture of the console: `python -m tests.console.readme_screenshot docs/console-workflows.png`.

Starts a server and a console as the tests do, saves a few workflows an operator might meet, and takes a
screenshot of the workflows page in Debian's Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

from sayiir_client import PersistenceClient
from tests.console import seed
from tests.console.conftest import CHROMIUM, WORKER_TOKEN, console_process
from tests.support.server_process import server_process


def _scene(client: PersistenceClient) -> None:
    now = datetime.now(UTC)
    done = (("reserve-stock", b'{"reserved": 3}'),)
    seed.save(
        client,
        seed.completed("order-1041", updated=now - timedelta(minutes=52)),
        seed.failed("order-1042"),
        seed.at_task("order-1043", "ship", done=done, tags=("eu",), updated=now - timedelta(minutes=7)),
        seed.failing("order-1044", tags=("payments",), priority=1, updated=now - timedelta(minutes=3)),
        seed.at_task("order-1045", tags=("payments", "eu"), priority=2, updated=now - timedelta(seconds=40)),
        seed.at_task("refund-0007", "refund", updated=now - timedelta(seconds=5)),
    )
    seed.claim(client, "order-1045", "worker-eu-1", ttl_seconds=90)
    seed.claim(client, "refund-0007", "worker-eu-2", task="refund", ttl_seconds=300)


def main(target: Path) -> None:
    with tempfile.TemporaryDirectory() as directory:
        tokens = Path(directory) / "tokens"
        tokens.write_text(f"{WORKER_TOKEN} worker\n")
        with (
            server_process("memory://", "--auth-tokens", str(tokens)) as server,
            PersistenceClient(server.address, token=WORKER_TOKEN) as client,
            console_process(server.address, WORKER_TOKEN, "--refresh", "0") as console,
            sync_playwright() as playwright,
        ):
            _scene(client)
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 520})
            page.goto(f"{console.url}/workflows")
            page.screenshot(path=target, full_page=True)
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
