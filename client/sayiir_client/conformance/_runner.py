"""Running the selected checks one after another against one channel, each in its own trial."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

import grpc

from sayiir_client.conformance._kit import Check, NotObservableError, RuleViolationError, Settings, Stubs, Trial

CHECK_TIMEOUT = timedelta(seconds=30)
"""Longest one check may take; a server that hangs a call fails the check instead of stalling the kit."""

AREAS = (
    "ID",
    "MODEL",
    "SNAP",
    "SIG",
    "CLAIM",
    "DISP",
    "WAKE",
    "RES",
    "RUN",
    "ERR",
    "WORKER",
    "CLAIM-AVAIL",
    "COMPLETE",
    "PAGE",
    "LIST",
)
"""Rule areas in the order of docs/behaviour.md: checks run and are listed in that order."""

_RULE = re.compile(r"([A-Z-]+?)-(\d+)\.(\d+)$")


class Verdict(Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    """The check could not run to a verdict: an unexpected exception (a kit bug, or a broken connection)."""
    SKIPPED = "skipped"
    """Not observable on this server or with these options (e.g. --max-wait-timeout not given)."""


@dataclass(frozen=True)
class Outcome:
    """The verdict of one check, and for a failure what was sent, what came back and what the rule expects."""

    check: Check
    verdict: Verdict
    seconds: float
    expected: str = ""
    sent: str = ""
    received: str = ""
    message: str = ""
    """Why a check was skipped or errored."""

    @property
    def counts_as_failure(self) -> bool:
        return self.verdict in (Verdict.FAILED, Verdict.ERROR)


def rule_order(check: Check) -> tuple[int, int, int]:
    match = _RULE.match(check.rule)
    if match is None:
        return (len(AREAS), 0, 0)
    area, group, number = match.groups()
    position = AREAS.index(area) if area in AREAS else len(AREAS)
    return (position, int(group), int(number))


def in_rule_order(checks: Sequence[Check]) -> list[Check]:
    return sorted(checks, key=rule_order)


async def run_checks(
    checks: Sequence[Check],
    channel: grpc.aio.Channel,
    settings: Settings,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    stubs = Stubs.on(channel)
    outcomes = []
    for index, check in enumerate(checks):
        outcome = await _run_one(check, Trial(check.rule, index, stubs, channel, settings))
        on_outcome(outcome)
        outcomes.append(outcome)
    return outcomes


async def _run_one(check: Check, trial: Trial) -> Outcome:
    started = time.monotonic()

    def outcome(verdict: Verdict, **fields: str) -> Outcome:
        return Outcome(check, verdict, time.monotonic() - started, **fields)

    try:
        await asyncio.wait_for(check.run(trial), CHECK_TIMEOUT.total_seconds())
    except RuleViolationError as violation:
        return outcome(Verdict.FAILED, expected=violation.expected, sent=violation.sent, received=violation.received)
    except NotObservableError as reason:
        return outcome(Verdict.SKIPPED, message=str(reason))
    except TimeoutError:
        last = trial.exchanges[-1] if trial.exchanges else None
        return outcome(
            Verdict.FAILED,
            expected=f"the check's calls answer within {CHECK_TIMEOUT.total_seconds():.0f} s",
            sent=last.sent() if last else "",
            received=last.received() if last else "",
        )
    except Exception as error:  # a check that breaks must not stop the others; it is reported, not hidden
        return outcome(Verdict.ERROR, message=f"{type(error).__name__}: {error}")
    finally:
        await trial.clean_up()
    return outcome(Verdict.PASSED)
