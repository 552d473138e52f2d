"""A real server (memory backend, tokens on), consoles on it as processes, and a headless Chromium.

The browser is Debian's Chromium driven by Playwright (no browser download): SAYIIR_CHROMIUM names another
binary. Without a browser the browser tests are skipped, unless SAYIIR_REQUIRE_BROWSER=1 (CI), where that is a
failure. Every browser test leaves a screenshot of its page in build/console-screenshots/.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sayiir_client import PersistenceClient
from tests.support.server_process import ServerProcess, server_process

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "console-screenshots"
CHROMIUM = os.environ.get("SAYIIR_CHROMIUM", "/usr/bin/chromium")

WORKER_TOKEN = "console-worker-token-3e1f"
READER_TOKEN = "console-reader-token-8b2a"
_SERVING = re.compile(r"serving (http://\S+) \(server: \S+, (.+)\)")


@dataclass
class ConsoleProcess:
    process: subprocess.Popen[str]
    url: str
    role: str
    log: list[str]


@contextlib.contextmanager
def console_process(
    server: str, token: str, *flags: str, program: Sequence[str] = (sys.executable, "-m", "sayiir_client.console")
) -> Iterator[ConsoleProcess]:
    """`PROGRAM --listen 127.0.0.1:0 --server SERVER` with SAYIIR_TOKEN, until stopped."""
    command = [*program, "--listen", "127.0.0.1:0", "--server", server, *flags]
    environment = {**os.environ, "SAYIIR_TOKEN": token}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment)
    assert process.stderr is not None
    log: list[str] = []
    found: list[re.Match[str]] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            if not found and (match := _SERVING.search(line)):
                found.append(match)

    threading.Thread(target=read, daemon=True).start()
    try:
        for _ in range(200):
            if found or process.poll() is not None:
                break
            threading.Event().wait(0.05)
        if not found:
            raise RuntimeError(f"the console did not start (exit code {process.poll()}): {''.join(log)}")
        yield ConsoleProcess(process, found[0].group(1), found[0].group(2), log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tokens = tmp_path_factory.mktemp("console") / "tokens"
    tokens.write_text(f"{WORKER_TOKEN} worker\n{READER_TOKEN} reader\n")
    with server_process("memory://", "--auth-tokens", str(tokens)) as started:
        yield started


@pytest.fixture(scope="package")
def store(server: ServerProcess) -> Iterator[PersistenceClient]:
    """A worker's client of the server, to seed workflows and check what the console did."""
    with PersistenceClient(server.address, token=WORKER_TOKEN) as client:
        yield client


@pytest.fixture(scope="package")
def console(server: ServerProcess) -> Iterator[ConsoleProcess]:
    """A console with a worker token: it offers the actions. Its pages refresh every second."""
    with console_process(server.address, WORKER_TOKEN, "--refresh", "1") as started:
        yield started


@pytest.fixture(scope="package")
def reader_console(server: ServerProcess) -> Iterator[ConsoleProcess]:
    with console_process(server.address, READER_TOKEN, "--refresh", "1") as started:
        yield started


def _browser_missing(reason: str) -> None:
    if os.environ.get("SAYIIR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and SAYIIR_REQUIRE_BROWSER=1 requires the browser tests to run")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("Playwright for Python is not installed")
    if not Path(CHROMIUM).is_file():
        _browser_missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context's page; afterwards its screenshot goes to build/console-screenshots/TEST.png."""
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    try:
        yield opened
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):  # a screenshot is an artifact: its failure must not hide the test's
            opened.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
        context.close()
