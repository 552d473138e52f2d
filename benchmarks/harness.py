"""One benchmark run: the echo ceiling, then every available backend, then the table, JSON and plot."""

from __future__ import annotations

import logging
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from benchmarks import measure
from benchmarks.echo import EchoClient
from benchmarks.listing import list_label, list_latency
from benchmarks.operations import Operation, Stubs, throughput_operations
from benchmarks.report import (
    RESULTS_JSON,
    SCALING_PNG,
    TABLE_TXT,
    Report,
    Row,
    Target,
    format_table,
    write_json,
    write_plot,
)
from benchmarks.scaling import Population, find_latency
from benchmarks.server_process import ServerProcess
from benchmarks.targets import TARGETS, BackendTarget, unavailable_reason
from benchmarks.wakeup import wakeup_latency
from benchmarks.worker_path import (
    WORKERS,
    PathResult,
    direct_polling,
    direct_queue,
    dispatch_latency,
    event_dispatch_latency,
    four_rpc_cycle,
    worker_path,
)

logger = logging.getLogger("benchmarks")

WAKEUP_ROW = "wakeup: save → WatchWakeups hint"
WAKEUP_ACROSS_REPLICAS_ROW = "wakeup across replicas: save on A → WatchWakeups hint on B"
WORKER_PATH_ROW = "worker path: ClaimAvailableTasks + CompleteTasks (Worker)"
FOUR_RPC_ROW = "4-RPC cycle: find → ClaimTask → SaveSnapshotFenced → Release"
DIRECT_POLLING_ROW = "direct PostgreSQL, sayiir-postgres style polling (4 statements)"
DIRECT_QUEUE_ROW = "direct PostgreSQL, SKIP LOCKED queue (2 statements)"
DISPATCH_ROW = "dispatch latency: PrepareRun → claim held by a waiting ClaimAvailableTasks"
DISPATCH_ACROSS_REPLICAS_ROW = "dispatch latency across replicas: PrepareRun on A → claim held on B"
EVENT_DISPATCH_ROW = "event dispatch: SendEvent → waiting claim holds the next task"

_MIB = 1024 * 1024
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 * _MIB), ("grpc.max_send_message_length", 16 * _MIB)]


PHASES = ("throughput", "worker-path", "scaling")
"""What a run measures of each backend, in this order."""


@dataclass(frozen=True)
class RunConfig:
    """How long and how big every part of a run is."""

    out: Path
    quick: bool
    backends: tuple[str, ...]
    clients: int = 16
    rounds: int = 3
    """Alternating echo/backend rounds per operation; the best round of each side counts (noise only slows)."""
    warmup_seconds: float = 0.25
    duration_seconds: float = 1.0
    cycle_instances_per_client: int = 16
    wakeup_samples: int = 300
    scaling_levels: tuple[int, ...] = (1_000, 10_000, 100_000)
    find_calls: int = 50
    find_budget_seconds: float = 3.0
    worker_path_workflows: int = 2000
    dispatch_samples: int = 200
    profile: bool = False
    phases: tuple[str, ...] = PHASES

    @classmethod
    def full(
        cls, out: Path, backends: Sequence[str], profile: bool = False, phases: Sequence[str] = PHASES
    ) -> RunConfig:
        return cls(out=out, quick=False, backends=tuple(backends), profile=profile, phases=tuple(phases))

    @classmethod
    def quick_run(
        cls, out: Path, backends: Sequence[str], profile: bool = False, phases: Sequence[str] = PHASES
    ) -> RunConfig:
        """Tiny counts and the 1,000-instance population only: a smoke test of every code path."""
        return cls(
            out=out,
            quick=True,
            backends=tuple(backends),
            rounds=1,
            warmup_seconds=0.05,
            duration_seconds=0.2,
            cycle_instances_per_client=2,
            wakeup_samples=10,
            scaling_levels=(1_000,),
            find_calls=10,
            find_budget_seconds=1.0,
            worker_path_workflows=40,
            dispatch_samples=5,
            profile=profile,
            phases=tuple(phases),
        )

    @property
    def completed_population(self) -> int:
        """Completed instances added on SQL backends after the largest InProgress population."""
        return self.scaling_levels[-1]


@dataclass(frozen=True)
class Sample:
    """One closed-loop run and the CPU it cost each side, per completed operation."""

    measurement: measure.Measurement
    server_cpu_us_per_op: float
    client_cpu_us_per_op: float


@asynccontextmanager
async def _serving(arguments: list[str], log_path: Path) -> AsyncIterator[tuple[ServerProcess, grpc.aio.Channel]]:
    server = await ServerProcess.start(arguments, log_path)
    try:
        async with grpc.aio.insecure_channel(server.address, options=_CHANNEL_OPTIONS) as channel:
            await channel.channel_ready()
            yield server, channel
    finally:
        await server.stop()


@asynccontextmanager
async def _profiling(server: ServerProcess, path: Path | None) -> AsyncIterator[None]:
    """Profile the server process for the block's duration into `path` (absolute); nothing when None."""
    if path is None:
        yield
        return
    await server.command("profile_start")
    try:
        yield
    finally:
        await server.command("profile_stop", path=str(path))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _client_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _wakeup_row(name: str, backend: str, result: measure.Measurement, note: str) -> Row:
    row = Row.measured(name, backend, result, kind="wakeup", note=note)
    row.ops_per_s = None  # sequential probes: a rate would only restate the latency
    return row


def _path_row(name: str, backend: str, result: PathResult, server_cpu_seconds: float | None) -> Row:
    """Workflows per second of one path; CPU µs/op is the server's per completed workflow."""
    row = Row(name, backend, kind="worker_path", ops_per_s=result.per_second, samples=result.workflows)
    if server_cpu_seconds is not None and result.workflows:
        row.server_cpu_us_per_op = server_cpu_seconds / result.workflows * 1e6
    row.note = f"{WORKERS} workers, {result.workflows:,} single-task workflows, 2 KB inputs; workflows/s"
    return row


def _error_row(operation: str, backend: str, error: Exception) -> Row:
    logger.error("%s / %s failed:\n%s", backend, operation, traceback.format_exc())
    if isinstance(error, grpc.aio.AioRpcError):
        summary = f"{error.code().name}: {error.details()}"
    else:
        summary = f"{type(error).__name__}: {error}"
    return Row(operation, backend, kind="error", note="error: " + " ".join(summary.split()))


class Harness:
    """Runs the echo server for the whole run and each available backend's server in turn."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.report = Report(meta=self._meta())
        self._echo: tuple[ServerProcess, grpc.aio.Channel] | None = None

    def _meta(self) -> dict[str, object]:
        config = asdict(self.config)
        config["out"] = str(self.config.out)
        return {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": config,
            "arrangement": (
                "server under test: sayiir_server.server.PersistenceServer in its own process "
                "(python -m benchmarks.server_process); echo: a bare grpc.aio server in another process; "
                f"load generator: this process, {self.config.clients} asyncio clients sharing one grpc.aio "
                "channel per server, generated stubs; loopback"
            ),
            "memory_method": "RSS of the server process (psutil), after gc.collect(), before and after seeding",
            "python": sys.version.split()[0],
            "grpc": grpc.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        }

    @property
    def _logs(self) -> Path:
        return self.config.out / "logs"

    async def run(self) -> Report:
        self.config.out.mkdir(parents=True, exist_ok=True)
        async with _serving(["--echo"], self._logs / "echo.log") as echo:
            self._echo = echo
            for target in TARGETS:
                if target.name in self.config.backends:
                    await self._measure_backend(target)
        self.report.meta["load_average_at_end"] = os.getloadavg()
        self.report.targets = evaluate_targets(self.report, self.config)
        self._write()
        return self.report

    def _write(self) -> None:
        table = format_table(self.report)
        print(table, flush=True)
        (self.config.out / TABLE_TXT).write_text(table + "\n")
        write_json(self.report, self.config.out / RESULTS_JSON)
        write_plot(self.report, self.config.out / SCALING_PNG)
        print(f"\nwritten: {self.config.out / RESULTS_JSON}, {self.config.out / SCALING_PNG}", flush=True)

    # -- measuring -----------------------------------------------------------------------------------

    async def _sample(self, server: ServerProcess, run_once: measure.Operation, profile: Path | None) -> Sample:
        config = self.config
        async with _profiling(server, profile):
            server_cpu, client_cpu = server.cpu_seconds(), _client_cpu_seconds()
            result = await measure.closed_loop(run_once, config.clients, config.warmup_seconds, config.duration_seconds)
            server_cpu, client_cpu = server.cpu_seconds() - server_cpu, _client_cpu_seconds() - client_cpu
        operations = max(result.completed_total, 1)
        return Sample(result, server_cpu / operations * 1e6, client_cpu / operations * 1e6)

    def _profile_path(self, backend: str, label: str) -> Path | None:
        return self.config.out / "profiles" / f"{backend}-{_slug(label)}.txt" if self.config.profile else None

    async def _paired(self, server: ServerProcess, backend: str, operation: Operation) -> Row:
        """Alternate echo and backend rounds; the best of each side makes the row and its ratio."""
        assert self._echo is not None
        echo_server, echo_channel = self._echo
        echo_client = EchoClient(echo_channel, operation.exchanges())
        echoes: list[Sample] = []
        reals: list[Sample] = []
        for round_number in range(self.config.rounds):
            last = round_number == self.config.rounds - 1
            echoes.append(await self._sample(echo_server, echo_client.run_once, None))
            profile = self._profile_path(backend, operation.name) if last else None
            reals.append(await self._sample(server, operation.run_once, profile))
        echo = max(echoes, key=lambda sample: sample.measurement.ops_per_second)
        real = max(reals, key=lambda sample: sample.measurement.ops_per_second)
        row = Row.measured(operation.name, backend, real.measurement)
        row.echo_ops_per_s = echo.measurement.ops_per_second
        row.echo_p50_ms = echo.measurement.p50_ms
        row.echo_p99_ms = echo.measurement.p99_ms
        row.ratio_to_echo = real.measurement.ops_per_second / echo.measurement.ops_per_second
        row.server_cpu_us_per_op = real.server_cpu_us_per_op
        row.echo_server_cpu_us_per_op = echo.server_cpu_us_per_op
        row.client_cpu_us_per_op = real.client_cpu_us_per_op
        row.rounds = self.config.rounds
        row.note = "bytes " + ", ".join(f"{e.request_bytes}→{e.response_bytes}" for e in operation.exchanges())
        return row

    # -- one backend ---------------------------------------------------------------------------------

    async def _measure_backend(self, target: BackendTarget) -> None:
        reason = await unavailable_reason(target)
        if reason is not None:
            self.report.backends[target.name] = f"skipped: {reason}"
            self.report.rows.append(Row("(all)", target.name, kind="skipped", note=f"skipped: {reason}"))
            logger.warning("skipping %s: %s", target.name, reason)
            return
        self.report.backends[target.name] = "measured"
        phases = (
            ("throughput", self._measure_throughput),
            ("worker-path", self._measure_worker_path),
            ("scaling", self._measure_scaling),
        )
        for phase, work in phases:
            if phase not in self.config.phases:
                continue
            try:
                await work(target)
            except Exception as error:  # one failed phase becomes a row; the other phases and backends still run
                self.report.rows.append(_error_row(f"({phase} phase)", target.name, error))

    async def _measure_throughput(self, target: BackendTarget) -> None:
        operations = throughput_operations(self.config.cycle_instances_per_client)
        async with (
            target.fresh_url() as url,
            _serving(["--backend", url], self._logs / f"{target.name}-throughput.log") as (server, channel),
        ):
            stubs = Stubs(channel)
            for operation in operations:
                logger.info("%s: %s", target.name, operation.name)
                try:
                    await operation.setup(stubs, self.config.clients)
                    self.report.rows.append(await self._paired(server, target.name, operation))
                except Exception as error:  # a failed operation becomes a row; the others still run
                    self.report.rows.append(_error_row(operation.name, target.name, error))
            await self._measure_wakeups(server, target.name, channel)
            await self._measure_event_dispatch(server, target.name)
            if target.replicated:
                await self._measure_wakeups_across_replicas(target.name, url, server, channel)

    async def _measure_wakeups(self, server: ServerProcess, backend: str, channel: grpc.aio.Channel) -> None:
        name = WAKEUP_ROW
        try:
            async with _profiling(server, self._profile_path(backend, name)):
                result = await wakeup_latency(channel, self.config.wakeup_samples)
        except Exception as error:
            self.report.rows.append(_error_row(name, backend, error))
            return
        self.report.rows.append(_wakeup_row(name, backend, result, "one save at a time, otherwise idle server"))

    async def _measure_event_dispatch(self, server: ServerProcess, backend: str) -> None:
        name = EVENT_DISPATCH_ROW
        try:
            async with _profiling(server, self._profile_path(backend, name)):
                result = await event_dispatch_latency(server.address, self.config.wakeup_samples)
        except Exception as error:
            self.report.rows.append(_error_row(name, backend, error))
            return
        note = "run at AtSignal; a worker long-polls ClaimAvailableTasks; one SendEvent at a time"
        self.report.rows.append(_wakeup_row(name, backend, result, note))

    async def _measure_wakeups_across_replicas(
        self, backend: str, url: str, replica_a: ServerProcess, channel_a: grpc.aio.Channel
    ) -> None:
        """Saves sent to replica A (the throughput server), hints watched on a second server on the same storage."""
        name = WAKEUP_ACROSS_REPLICAS_ROW
        logger.info("%s: %s (starting replica B)", backend, name)
        try:
            async with (
                _serving(["--backend", url], self._logs / f"{backend}-replica-b.log") as (replica_b, channel_b),
                _profiling(replica_a, self._profile_path(backend, name + " replica A")),
                _profiling(replica_b, self._profile_path(backend, name + " replica B")),
            ):
                result = await wakeup_latency(channel_a, self.config.wakeup_samples, watch_channel=channel_b)
        except Exception as error:
            self.report.rows.append(_error_row(name, backend, error))
            return
        note = "save sent to replica A, WatchWakeups on replica B (two server processes, one database); one at a time"
        self.report.rows.append(_wakeup_row(name, backend, result, note))

    # -- the worker path -----------------------------------------------------------------------------

    async def _measure_worker_path(self, target: BackendTarget) -> None:
        """Both service paths on fresh workflows of one server, then (PostgreSQL) both direct baselines."""
        workflows = self.config.worker_path_workflows
        async with (
            target.fresh_url() as url,
            _serving(["--backend", url], self._logs / f"{target.name}-worker-path.log") as (server, _),
        ):
            for start, name, path in ((0, WORKER_PATH_ROW, worker_path), (workflows, FOUR_RPC_ROW, four_rpc_cycle)):
                logger.info("%s: %s", target.name, name)
                await server.command("seed", kind="worker_path", start=start, count=workflows)
                await target.analyze(url)  # as the direct baselines do after loading: both compared on fresh statistics
                async with _profiling(server, self._profile_path(target.name, name)):
                    cpu = server.cpu_seconds()
                    result = await path(server.address, workflows)
                    cpu = server.cpu_seconds() - cpu
                self.report.rows.append(_path_row(name, target.name, result, cpu))
            await self._measure_dispatch(target.name, DISPATCH_ROW, server.address, server.address)
            if target.replicated:
                async with _serving(["--backend", url], self._logs / f"{target.name}-replica-b.log") as (replica, _):
                    await self._measure_dispatch(
                        target.name, DISPATCH_ACROSS_REPLICAS_ROW, server.address, replica.address
                    )
            if target.name == "postgres":
                for name, direct in ((DIRECT_POLLING_ROW, direct_polling), (DIRECT_QUEUE_ROW, direct_queue)):
                    logger.info("%s: %s", target.name, name)
                    self.report.rows.append(_path_row(name, target.name, await direct(url, workflows), None))

    async def _measure_dispatch(self, backend: str, name: str, start_address: str, claim_address: str) -> None:
        logger.info("%s: %s", backend, name)
        prefix = "latency-across" if start_address != claim_address else "latency"
        result = await dispatch_latency(start_address, self.config.dispatch_samples, claim_address, prefix)
        self.report.rows.append(Row.measured(name, backend, result, kind="latency", note="one at a time"))

    # -- scaling -------------------------------------------------------------------------------------

    async def _measure_scaling(self, target: BackendTarget) -> None:
        config = self.config
        async with (
            target.fresh_url() as url,
            _serving(["--backend", url], self._logs / f"{target.name}-scaling.log") as (server, channel),
        ):
            await server.command("gc")
            baseline_rss = server.rss_bytes()
            population = Population(server)
            for level in config.scaling_levels:
                logger.info("%s: seeding %s InProgress instances", target.name, f"{level:,}")
                seeding = await self._grow(target, server, url, population, "in_progress", level)
                await self._measure_find(server, target.name, channel, population, seeding)
                await self._measure_list(server, target.name, channel, population)
            if target.name == "memory":
                self._record_memory(baseline_rss, server.rss_bytes(), population.in_progress)
            else:
                logger.info("%s: seeding %s Completed instances", target.name, f"{config.completed_population:,}")
                seeding = await self._grow(target, server, url, population, "completed", config.completed_population)
                await self._measure_find(server, target.name, channel, population, seeding)
                await self._measure_list(server, target.name, channel, population)

    @staticmethod
    async def _grow(
        target: BackendTarget, server: ServerProcess, url: str, population: Population, kind: str, total: int
    ) -> str:
        """Seed, settle the storage, then wait for the server to finish what the seeding queued (hints)."""
        steps = [await population.grow(kind, total), await target.settle(url)]
        steps.append(f"server idle {await server.wait_idle():.1f} s later")
        return "; ".join(step for step in steps if step)

    async def _measure_find(
        self,
        server: ServerProcess,
        backend: str,
        channel: grpc.aio.Channel,
        population: Population,
        seeding: str,
    ) -> None:
        label = f"FindAvailableTasks(limit=10) @ {population.in_progress:,} InProgress"
        if population.completed:
            label += f" + {population.completed:,} Completed"
        async with _profiling(server, self._profile_path(backend, label)):
            result = await find_latency(channel, self.config.find_calls, self.config.find_budget_seconds)
        self.report.rows.append(
            Row.measured(
                label,
                backend,
                result,
                kind="scaling",
                in_progress=population.in_progress,
                completed=population.completed,
                note=f"one client, sequential; {seeding}",
            )
        )

    async def _measure_list(
        self, server: ServerProcess, backend: str, channel: grpc.aio.Channel, population: Population
    ) -> None:
        """A filtered ListWorkflows page on the population the find row just measured (no seeding of its own)."""
        label = list_label(population.in_progress, population.completed)
        async with _profiling(server, self._profile_path(backend, label)):
            result = await list_latency(channel, self.config.find_calls, self.config.find_budget_seconds)
        self.report.rows.append(
            Row.measured(
                label,
                backend,
                result,
                kind="listing",
                in_progress=population.in_progress,
                completed=population.completed,
                note="one client, sequential; each call the next page (newest first), the first again after the last",
            )
        )

    def _record_memory(self, baseline: int, loaded: int, instances: int) -> None:
        per_10k = (loaded - baseline) / _MIB / (instances / 10_000)
        note = f"RSS {baseline / _MIB:.0f} → {loaded / _MIB:.0f} MiB with {instances:,} ready instances"
        self.report.rows.append(
            Row("server memory per 10,000 instances", "memory", kind="memory", value=per_10k, note=note)
        )


def evaluate_targets(report: Report, config: RunConfig) -> list[Target]:
    """The issue's targets against this run's rows (benchmark figures, not pass/fail tests)."""
    targets: list[Target] = []
    for operation in ("SaveSnapshot 2 KB", "LoadSnapshot 2 KB", "SaveSnapshot 64 KB", "LoadSnapshot 64 KB"):
        row = report.find(operation, "memory")
        ratio = None if row is None else row.ratio_to_echo
        measured = "not measured" if row is None or ratio is None else f"{ratio:.2f}× echo ops/s" + _cpu_ratio(row)
        targets.append(
            Target(f"{operation} on memory ≥ 0.8× echo ops/s", measured, None if ratio is None else ratio >= 0.8)
        )
    for backend, status in report.backends.items():
        if status != "measured":
            continue
        row = report.find(WAKEUP_ROW, backend)
        p50 = None if row is None else row.p50_ms
        measured = "not measured" if p50 is None else f"p50 {p50:.2f} ms"
        targets.append(Target(f"wakeup p50 on {backend} ≤ 5 ms", measured, None if p50 is None else p50 <= 5))
    for backend in ("sqlite", "postgres"):
        if report.backends.get(backend) != "measured":
            continue
        targets.extend(_scaling_targets(report, backend, config))
    targets.extend(_worker_path_targets(report))
    return targets


def _per_second_ratio(report: Report, backend: str, numerator: str, denominator: str) -> tuple[str, float | None]:
    top, bottom = report.find(numerator, backend), report.find(denominator, backend)
    if top is None or bottom is None or not top.ops_per_s or not bottom.ops_per_s:
        return "not measured", None
    ratio = top.ops_per_s / bottom.ops_per_s
    return f"{top.ops_per_s:,.0f} vs {bottom.ops_per_s:,.0f} workflows/s = {ratio:.2f}×", ratio


def _worker_path_targets(report: Report) -> list[Target]:
    """The worker-path issue's targets: ratios of one run, latencies, and server CPU per workflow (reported)."""
    targets = []
    measured = [backend for backend, status in report.backends.items() if status == "measured"]
    for backend in measured:
        if backend == "postgres":
            text, ratio = _per_second_ratio(report, backend, WORKER_PATH_ROW, DIRECT_POLLING_ROW)
            targets.append(Target("postgres: worker path ≥ 1.5× sayiir-style polling", text, _at_least(ratio, 1.5)))
            text, ratio = _per_second_ratio(report, backend, WORKER_PATH_ROW, DIRECT_QUEUE_ROW)
            targets.append(Target("postgres: worker path vs the SKIP LOCKED queue (headed for ≥ 1.0×)", text, None))
        else:
            text, ratio = _per_second_ratio(report, backend, WORKER_PATH_ROW, FOUR_RPC_ROW)
            targets.append(Target(f"{backend}: worker path ≥ 3× the 4-RPC cycle", text, _at_least(ratio, 3.0)))
        for name in (DISPATCH_ROW, DISPATCH_ACROSS_REPLICAS_ROW):
            row = report.find(name, backend)
            if row is None or row.p50_ms is None or row.p99_ms is None:
                continue
            met = row.p50_ms <= 5 and row.p99_ms <= 20
            label = "dispatch latency" + (" across replicas" if name == DISPATCH_ACROSS_REPLICAS_ROW else "")
            targets.append(
                Target(
                    f"{backend}: {label} p50 ≤ 5 ms, p99 ≤ 20 ms", f"p50 {row.p50_ms:.2f}, p99 {row.p99_ms:.2f} ms", met
                )
            )
        path = report.find(WORKER_PATH_ROW, backend)
        if path is not None and path.server_cpu_us_per_op:
            cpu = f"{path.server_cpu_us_per_op:,.0f} µs of server CPU per completed workflow"
            targets.append(Target(f"{backend}: server CPU per workflow (reported)", cpu, None))
    return targets


def _at_least(ratio: float | None, bound: float) -> bool | None:
    return None if ratio is None else ratio >= bound


def _cpu_ratio(row: Row) -> str:
    """The same comparison by server CPU per operation, which other load on the machine disturbs far less."""
    if not row.server_cpu_us_per_op or not row.echo_server_cpu_us_per_op:
        return ""
    ratio = row.echo_server_cpu_us_per_op / row.server_cpu_us_per_op
    return (
        f"; by server CPU: echo {row.echo_server_cpu_us_per_op:.0f} µs/op vs "
        f"{row.server_cpu_us_per_op:.0f} µs/op = {ratio:.2f}×"
    )


def _scaling_targets(report: Report, backend: str, config: RunConfig) -> list[Target]:
    return _growth_targets(report, backend, config, "scaling", "FindAvailableTasks") + _growth_targets(
        report, backend, config, "listing", "a ListWorkflows(InProgress) page"
    )


def _growth_targets(report: Report, backend: str, config: RunConfig, kind: str, what: str) -> list[Target]:
    """`what` at 100,000 instances (and + 100,000 Completed) costs at most 2× its latency at 1,000."""
    rows = [row for row in report.rows if row.backend == backend and row.kind == kind and row.p50_ms]
    base = next((row for row in rows if row.in_progress == 1_000 and not row.completed), None)
    targets = []
    for largest in (row for row in rows if row.in_progress == 100_000):
        if base is None or base.p50_ms is None or largest.p50_ms is None:
            continue
        factor = largest.p50_ms / base.p50_ms
        population = "100,000" + (" + 100,000 Completed" if largest.completed else "")
        targets.append(
            Target(
                f"{what} at {population} ≤ 2× at 1,000 on {backend}",
                f"p50 {largest.p50_ms:.2f} ms vs {base.p50_ms:.2f} ms = {factor:.2f}×",
                factor <= 2,
            )
        )
    if not targets and config.quick:
        targets.append(Target(f"{what} at 100,000 ≤ 2× at 1,000 on {backend}", "not measured (--quick)", None))
    return targets
