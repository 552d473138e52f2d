"""The `sayiir-conformance` command: options, connecting, running the checks, reports and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import grpc

from sayiir_client.conformance import _report, checks
from sayiir_client.conformance._kit import REGISTRY, Check, Settings, Stubs, refusal_of
from sayiir_client.conformance._runner import Outcome, in_rule_order, run_checks
from sayiir_client.v1 import request_response_pb2 as rr

EXIT_PASSED = 0
"""Every selected check passed (or was skipped as not observable)."""
EXIT_FAILED = 1
"""At least one check failed or errored."""
EXIT_USAGE = 2
"""Bad options, no check matched --rules, or an unreadable TLS file."""
EXIT_UNREACHABLE = 3
"""The target could not be reached (connection, TLS handshake, or UNAVAILABLE)."""
EXIT_REFUSED = 4
"""The target refused the credentials (UNAUTHENTICATED or PERMISSION_DENIED)."""

assert checks  # importing the package registers every check


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sayiir-conformance",
        description="Check a sayiir.persistence.v1 server against the rules of docs/behaviour.md, black-box.",
        epilog="Exit codes: 0 all selected checks passed, 1 a check failed, 2 usage, 3 target unreachable, "
        "4 credentials refused.",
    )
    parser.add_argument("--target", metavar="HOST:PORT", help="the server to check")
    parser.add_argument("--token", help="bearer token sent as 'authorization: Bearer TOKEN' (role worker)")
    parser.add_argument("--reader-token", help="a token of role reader, to check ERR-5.2 (skipped without it)")
    parser.add_argument("--ca", type=Path, metavar="PEM", help="CA certificates to verify the server: turns TLS on")
    parser.add_argument("--cert", type=Path, metavar="PEM", help="client certificate chain for mTLS (with --key)")
    parser.add_argument("--key", type=Path, metavar="PEM", help="private key of --cert")
    parser.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="GLOB",
        help="only the checks of matching rule ids, e.g. 'SNAP-*' or 'CLAIM-1.?'; repeatable, or comma-separated",
    )
    parser.add_argument("--list", action="store_true", help="list the selected checks and exit")
    parser.add_argument("--junit-xml", type=Path, metavar="PATH", help="write a JUnit XML report")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write a JSON report")
    parser.add_argument(
        "--prefix",
        help="start of every instance id, tag and worker id the kit creates (default: conformance-<random>-)",
    )
    parser.add_argument(
        "--max-wait-timeout",
        type=float,
        metavar="SECONDS",
        help="the server's WaitForWakeup cap, to check WAKE-2.2 (skipped without it)",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        metavar="N",
        help="the server's message size limit, to check ERR-2.2 (skipped without it)",
    )
    parser.add_argument(
        "--clock-slack",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how far the server's clock may be from this machine's (default 5)",
    )
    parser.add_argument("--deadline", type=float, default=10.0, metavar="SECONDS", help="deadline of each call")
    parser.add_argument(
        "--connect-timeout", type=float, default=10.0, metavar="SECONDS", help="how long to wait for the connection"
    )
    parser.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    patterns = [pattern.strip() for value in options.rules for pattern in value.split(",") if pattern.strip()]
    selected = in_rule_order(REGISTRY.select(patterns))
    if not selected:
        print(f"sayiir-conformance: error: no check matches --rules {' '.join(patterns)}", file=sys.stderr)
        return EXIT_USAGE
    if options.list:
        sys.stdout.write(_report.listing(selected))
        return EXIT_PASSED
    if not options.target:
        parser.print_usage(sys.stderr)
        print("sayiir-conformance: error: --target is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        credentials = _credentials(options)
    except OSError as error:
        print(f"sayiir-conformance: error: cannot read a TLS file: {error}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_run(options, selected, credentials))


def _credentials(options: argparse.Namespace) -> grpc.ChannelCredentials | None:
    if options.ca is None and options.cert is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=options.ca.read_bytes() if options.ca else None,
        private_key=options.key.read_bytes() if options.key else None,
        certificate_chain=options.cert.read_bytes() if options.cert else None,
    )


async def _run(options: argparse.Namespace, selected: list[Check], credentials: grpc.ChannelCredentials | None) -> int:
    settings = Settings(
        prefix=options.prefix or f"conformance-{secrets.token_hex(4)}-",
        metadata=(("authorization", f"Bearer {options.token}"),) if options.token else (),
        deadline=timedelta(seconds=options.deadline),
        clock_slack=timedelta(seconds=options.clock_slack),
        max_wait_timeout=timedelta(seconds=options.max_wait_timeout) if options.max_wait_timeout else None,
        max_message_bytes=options.max_message_bytes,
        token_given=bool(options.token),
        reader_metadata=(("authorization", f"Bearer {options.reader_token}"),) if options.reader_token else None,
    )
    if credentials is None:
        channel = grpc.aio.insecure_channel(options.target)
    else:
        channel = grpc.aio.secure_channel(options.target, credentials)
    async with channel:
        refused = await _probe(channel, settings, options.connect_timeout)
        if refused is not None:
            return refused
        started = time.monotonic()
        outcomes = await run_checks(
            selected, channel, settings, on_outcome=lambda outcome: _print_progress(outcome, options.quiet)
        )
        seconds = time.monotonic() - started
    sys.stdout.write(_report.summary(outcomes, seconds))
    if options.json:
        _report.write_json(options.json, options.target, settings.prefix, outcomes, seconds)
    if options.junit_xml:
        _report.write_junit(options.junit_xml, outcomes, seconds)
    return EXIT_FAILED if any(outcome.counts_as_failure for outcome in outcomes) else EXIT_PASSED


def _print_progress(outcome: Outcome, quiet: bool) -> None:
    if not quiet or outcome.counts_as_failure:
        print(_report.line(outcome), flush=True)


async def _probe(channel: grpc.aio.Channel, settings: Settings, connect_timeout: float) -> int | None:
    """One LoadSnapshot of an id nobody uses: the exit code when the target is unusable, else None."""
    target_error = "sayiir-conformance: error: "
    try:
        await asyncio.wait_for(channel.channel_ready(), connect_timeout)
    except TimeoutError:
        print(f"{target_error}cannot connect within {connect_timeout:g} s", file=sys.stderr)
        return EXIT_UNREACHABLE
    request = rr.LoadSnapshotRequest(instance_id=f"{settings.prefix}probe")
    try:
        await Stubs.on(channel).snapshots.LoadSnapshot(
            request, timeout=settings.deadline.total_seconds(), metadata=settings.metadata
        )
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            print(f"{target_error}the server refused the credentials: {refusal_of(error).describe()}", file=sys.stderr)
            return EXIT_REFUSED
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            print(f"{target_error}the server is unavailable: {refusal_of(error).describe()}", file=sys.stderr)
            return EXIT_UNREACHABLE
    return None
