"""`python -m benchmarks --out DIR [--quick]`: see README.md, section Benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from benchmarks.harness import PHASES, Harness, RunConfig
from benchmarks.targets import BACKEND_NAMES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Throughput, latency and scaling of sayiir-server against a bare gRPC echo, on loopback.",
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench"), help="directory for the JSON, table and plot")
    parser.add_argument("--quick", action="store_true", help="tiny counts and 1,000 instances only (smoke test)")
    parser.add_argument(
        "--backends",
        default=",".join(BACKEND_NAMES),
        help=f"comma-separated subset of {','.join(BACKEND_NAMES)} (default: all; unavailable ones are skipped)",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default: all)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the server (pyinstrument) during every measurement, into OUT/profiles",
    )
    arguments = parser.parse_args(argv)
    backends = [name.strip() for name in arguments.backends.split(",") if name.strip()]
    unknown = sorted(set(backends) - set(BACKEND_NAMES))
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKEND_NAMES)}")
    phases = tuple(name.strip() for name in arguments.phases.split(",") if name.strip())
    if unknown_phases := sorted(set(phases) - set(PHASES)):
        parser.error(f"unknown phase(s) {', '.join(unknown_phases)}; known: {', '.join(PHASES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    factory = RunConfig.quick_run if arguments.quick else RunConfig.full
    config = factory(arguments.out.resolve(), backends, profile=arguments.profile, phases=phases)
    asyncio.run(Harness(config).run())


main()
