"""The server under test, in its own process so it never shares a GIL with the load generator.

Child side (`python -m benchmarks.server_process --backend URL` or `--echo`): opens the backend with
`open_backend`, serves it with the real `PersistenceServer` on a free loopback port, prints one
`BENCH {"event": "ready", "port": N}` line, then obeys JSON commands on stdin (seed, gc,
profile_start, profile_stop, stop), answering each with one `BENCH {...}` line on stdout. Logs go to
stderr. Parent side: `ServerProcess` starts the child, sends commands and reads its RSS with psutil.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import grpc
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
_PREFIX = "BENCH "
_START_TIMEOUT = 60.0
_COMMAND_TIMEOUT = 600.0


# -- parent side -------------------------------------------------------------------------------------


class ServerProcessError(RuntimeError):
    """The server process failed to start or to answer a command."""


class ServerProcess:
    """A running server child: its port, its commands, its resident memory."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log_path: Path) -> None:
        self._process = process
        self.port = port
        self.log_path = log_path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    async def start(cls, arguments: list[str], log_path: Path) -> ServerProcess:
        """Start `python -m benchmarks.server_process ARGUMENTS`, stderr to `log_path`, and wait until it serves."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks.server_process",
                *arguments,
                cwd=REPO_ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        try:
            ready = await asyncio.wait_for(_read_reply(process), _START_TIMEOUT)
        except (TimeoutError, ServerProcessError) as error:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise ServerProcessError(f"server process did not start ({error}); see {log_path}") from error
        return cls(process, int(ready["port"]), log_path)

    async def command(self, name: str, **arguments: Any) -> dict[str, Any]:
        """Send one command and return the child's reply."""
        stdin = self._process.stdin
        if stdin is None:
            raise ServerProcessError("server process has no stdin")
        stdin.write((json.dumps({"cmd": name, **arguments}) + "\n").encode())
        await stdin.drain()
        reply = await asyncio.wait_for(_read_reply(self._process), _COMMAND_TIMEOUT)
        if not reply.get("ok", False):
            raise ServerProcessError(f"command {name} failed in the server process: {reply.get('error')}")
        return reply

    def rss_bytes(self) -> int:
        """Resident set size of the server process, as the operating system reports it."""
        return int(psutil.Process(self._process.pid).memory_info().rss)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process (all its threads) has used so far."""
        times = psutil.Process(self._process.pid).cpu_times()
        return float(times.user + times.system)

    async def wait_idle(self, timeout: float = 60.0, interval: float = 0.25, busy_fraction: float = 0.05) -> float:
        """Wait until the server uses under `busy_fraction` of a core over `interval` (work queued by a seeding,
        such as PostgreSQL notifications, is done); returns the seconds waited, at most `timeout`."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < timeout:
            before = self.cpu_seconds()
            await asyncio.sleep(interval)
            if self.cpu_seconds() - before < interval * busy_fraction:
                break
        return loop.time() - started

    async def stop(self) -> None:
        """Ask the child to drain and exit; kill it if it does not within a few seconds."""
        if self._process.returncode is not None:
            return
        with contextlib.suppress(ServerProcessError, ConnectionError, TimeoutError):
            await asyncio.wait_for(self.command("stop"), 10)
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


async def _read_reply(process: asyncio.subprocess.Process) -> dict[str, Any]:
    stdout = process.stdout
    if stdout is None:
        raise ServerProcessError("server process has no stdout")
    while True:
        line = await stdout.readline()
        if not line:
            raise ServerProcessError(f"server process exited (code {await process.wait()})")
        text = line.decode().strip()
        if text.startswith(_PREFIX):
            reply: dict[str, Any] = json.loads(text[len(_PREFIX) :])
            return reply


# -- child side --------------------------------------------------------------------------------------


def _say(out: TextIO, **message: Any) -> None:
    out.write(_PREFIX + json.dumps(message) + "\n")
    out.flush()


class _Child:
    """The child's state: what it serves and, when asked, a profiler."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.profiler: Any = None

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command["cmd"]
        started = time.perf_counter()
        reply: dict[str, Any] = {}
        if name == "seed":
            reply["method"] = await self._seed(command["kind"], int(command["start"]), int(command["count"]))
        elif name == "gc":
            gc.collect()
        elif name == "profile_start":
            from pyinstrument import Profiler

            self.profiler = Profiler(interval=0.0005, async_mode="disabled")
            self.profiler.start()
        elif name == "profile_stop":
            self._write_profile(Path(command["path"]))
        else:
            raise ValueError(f"unknown command {name!r}")
        return {**reply, "seconds": time.perf_counter() - started}

    async def _seed(self, kind: str, start: int, count: int) -> str:
        from benchmarks.seeding import seed

        if self.backend is None:
            raise ValueError("the echo server has no backend to seed")
        return await seed(self.backend, kind, start, count)

    def _write_profile(self, path: Path) -> None:
        profiler, self.profiler = self.profiler, None
        if profiler is None:
            raise ValueError("no profile was started")
        profiler.stop()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        path.with_suffix(".html").write_text(profiler.output_html())


async def _serve_commands(child: _Child) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "stop":
            break
        try:
            reply = await child.run(command)
        except Exception as error:  # reported to the parent, which decides what fails
            _say(sys.stdout, ok=False, error=f"{type(error).__name__}: {error}")
        else:
            _say(sys.stdout, ok=True, **reply)


async def _serve_echo() -> None:
    from benchmarks.echo import echo_handler

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((echo_handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _say(sys.stdout, event="ready", port=port)
    try:
        await _serve_commands(_Child(None))
    finally:
        await server.stop(1)


async def _serve_backend(url: str) -> None:
    from datetime import timedelta

    from sayiir_server.api.server import PersistenceServer, ServerOptions
    from sayiir_server.backends import open_backend

    backend = await open_backend(url)
    server = PersistenceServer(backend, ServerOptions(listen="127.0.0.1:0", grace_period=timedelta(seconds=1)))
    await server.start()
    _say(sys.stdout, event="ready", port=server.port)
    try:
        await _serve_commands(_Child(backend))
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--backend", help="backend URL to serve with PersistenceServer")
    target.add_argument("--echo", action="store_true", help="serve the bare echo service instead")
    arguments = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve_echo() if arguments.echo else _serve_backend(arguments.backend))


if __name__ == "__main__":
    main()
