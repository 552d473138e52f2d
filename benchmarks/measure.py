"""Closed-loop load: N clients each await one operation after another; ops/s and latency percentiles."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

Operation = Callable[[int, int], Awaitable[None]]
"""One benchmarked operation: called with (client index, iteration of that client)."""


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (fraction 0.5 is the median)."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(fraction * len(sorted_values)) - 1, 0)
    return sorted_values[rank]


@dataclass(frozen=True)
class Measurement:
    """Completed operations inside the measured window and their latencies in seconds."""

    latencies: tuple[float, ...]
    window_seconds: float
    completed_total: int = 0
    """Operations completed in the whole run, warm-up included (the denominator of CPU per operation)."""

    @property
    def ops_per_second(self) -> float:
        return len(self.latencies) / self.window_seconds if self.window_seconds > 0 else math.nan

    @property
    def p50_ms(self) -> float:
        return percentile(sorted(self.latencies), 0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(sorted(self.latencies), 0.99) * 1000


def of_latencies(latencies: Sequence[float]) -> Measurement:
    """Sequential probes: their latencies; the window is their total."""
    return Measurement(tuple(latencies), sum(latencies), len(latencies))


async def closed_loop(operation: Operation, clients: int, warmup: float, duration: float) -> Measurement:
    """Run `clients` concurrent loops of `operation`: a warm-up, then a window of `duration` seconds.

    Calls that finish inside the window count (whenever they started), so ops/s is the steady-state
    completion rate and the latencies are those of the calls completed in steady state.
    """
    loop = asyncio.get_running_loop()
    window_start = loop.time() + warmup
    window_end = window_start + duration
    latencies: list[float] = []
    completed = [0] * clients

    async def client(index: int) -> None:
        while loop.time() < window_end:
            started = time.perf_counter()
            await operation(index, completed[index])
            finished_at = loop.time()
            completed[index] += 1
            if window_start <= finished_at <= window_end:
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client(index) for index in range(clients)))
    return Measurement(tuple(latencies), duration, sum(completed))


async def sequential(operation: Operation, count: int) -> Measurement:
    """`count` calls one after another from one client (latency without queueing); the window is their total."""
    latencies: list[float] = []
    for iteration in range(count):
        started = time.perf_counter()
        await operation(0, iteration)
        latencies.append(time.perf_counter() - started)
    return Measurement(tuple(latencies), sum(latencies), count)
