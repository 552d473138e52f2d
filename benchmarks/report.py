"""The results: one table (stdout), the same rows as JSON, and a PNG of find latency against instance count."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement

ECHO = "echo"
RESULTS_JSON = "results.json"
TABLE_TXT = "table.txt"
SCALING_PNG = "find_latency_vs_instances.png"


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


@dataclass
class Row:
    """One line of the table. Scaling rows also say their population; failed or skipped rows say why."""

    operation: str
    backend: str
    ops_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio_to_echo: float | None = None
    samples: int = 0
    kind: str = "throughput"
    """throughput | wakeup | scaling (FindAvailableTasks) | listing (ListWorkflows) | memory | skipped | error."""
    in_progress: int | None = None
    completed: int | None = None
    value: float | None = None
    """The figure of a row that has no latency (memory: MiB of RSS per 10,000 instances)."""
    echo_ops_per_s: float | None = None
    echo_p50_ms: float | None = None
    echo_p99_ms: float | None = None
    server_cpu_us_per_op: float | None = None
    """CPU (user + system, every thread) the server process spent per operation, warm-up included."""
    echo_server_cpu_us_per_op: float | None = None
    client_cpu_us_per_op: float | None = None
    """CPU the load generator spent per operation: near 1e6 / ops/s means the client, not the server, is the limit."""
    rounds: int = 0
    note: str = ""

    @classmethod
    def measured(cls, operation: str, backend: str, measurement: Measurement, **extra: Any) -> Row:
        return cls(
            operation=operation,
            backend=backend,
            ops_per_s=_finite(measurement.ops_per_second),
            p50_ms=_finite(measurement.p50_ms),
            p99_ms=_finite(measurement.p99_ms),
            samples=len(measurement.latencies),
            **extra,
        )


@dataclass
class Target:
    """A figure the issue asks for, and whether this run met it (None: not measured in this run)."""

    target: str
    measured: str
    met: bool | None


@dataclass
class Report:
    meta: dict[str, Any]
    backends: dict[str, str] = field(default_factory=dict)
    """Backend name → "measured" or "skipped: reason"."""
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def find(self, operation: str, backend: str) -> Row | None:
        for row in self.rows:
            if row.operation == operation and row.backend == backend:
                return row
        return None


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def format_table(report: Report) -> str:
    headers = (
        *("operation", "backend", "ops/s", "p50 ms", "p99 ms"),
        *("echo ops/s", "× echo", "CPU µs/op", "echo CPU", "note"),
    )
    lines = [
        (
            row.operation,
            row.backend,
            _number(row.ops_per_s, 0),
            _number(row.p50_ms, 2),
            _number(row.p99_ms, 2),
            _number(row.echo_ops_per_s, 0),
            _number(row.ratio_to_echo, 2),
            _number(row.server_cpu_us_per_op, 0),
            _number(row.echo_server_cpu_us_per_op, 0),
            row.note if row.value is None else f"{row.value:.1f} MiB per 10,000 instances; {row.note}",
        )
        for row in report.rows
    ]
    widths = [max(len(headers[i]), *(len(line[i]) for line in lines)) for i in range(len(headers) - 1)]

    def render(cells: tuple[str, ...]) -> str:
        left = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1])]
        right = [cell.rjust(width) for cell, width in zip(cells[2:-1], widths[2:], strict=True)]
        return "  ".join([*left, *right, cells[-1]]).rstrip()

    rule = "  ".join("-" * width for width in widths) + "  ----"
    table = [render(headers), rule, *(render(line) for line in lines)]
    table.append("CPU µs/op: server process CPU per operation (echo CPU: the echo server's for the same bytes).")
    if report.targets:
        table += ["", "targets:"]
        for target in report.targets:
            verdict = {True: "met", False: "MISSED", None: "not measured"}[target.met]
            table.append(f"  [{verdict}] {target.target}: {target.measured}")
    return "\n".join(table)


def write_json(report: Report, path: Path) -> None:
    document = {
        "meta": report.meta,
        "backends": report.backends,
        "rows": [asdict(row) for row in report.rows],
        "targets": [asdict(target) for target in report.targets],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class _ScalingPoint:
    backend: str
    in_progress: int
    completed: int
    p50_ms: float
    p99_ms: float


def _scaling_points(report: Report) -> list[_ScalingPoint]:
    return [
        _ScalingPoint(row.backend, row.in_progress or 0, row.completed or 0, row.p50_ms, row.p99_ms)
        for row in report.rows
        if row.kind == "scaling" and row.p50_ms is not None and row.p99_ms is not None
    ]


def write_plot(report: Report, path: Path) -> None:
    """p50 (solid) and p99 (dashed) of FindAvailableTasks(limit=10) against InProgress instances, per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for index, backend in enumerate(dict.fromkeys(row.backend for row in report.rows if row.kind == "scaling")):
        colour = f"C{index}"
        rows = [r for r in _scaling_points(report) if r.backend == backend]
        plain = sorted((r for r in rows if not r.completed), key=lambda r: r.in_progress)
        counts = [float(r.in_progress) for r in plain]
        axes.plot(counts, [r.p50_ms for r in plain], "o-", color=colour, label=f"{backend} p50")
        axes.plot(counts, [r.p99_ms for r in plain], "--", color=colour, alpha=0.5)
        for point in (r for r in rows if r.completed):
            label = f"{backend} p50, +{point.completed:,} Completed"
            axes.plot([float(point.in_progress)], [point.p50_ms], "x", color=colour, markersize=10, label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("InProgress (ready) instances")
    axes.set_ylabel("FindAvailableTasks(limit=10) latency, ms (dashed: p99)")
    axes.set_title("Dispatch query latency against population")
    axes.grid(True, which="both", alpha=0.3)
    if axes.lines:
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
