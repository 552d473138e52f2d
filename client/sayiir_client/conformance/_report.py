"""The three reports: text for a terminal, JSON and JUnit XML for CI systems."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sayiir_client.conformance._kit import Check
from sayiir_client.conformance._runner import Outcome, Verdict

_LABELS = {Verdict.PASSED: "PASS", Verdict.FAILED: "FAIL", Verdict.ERROR: "ERROR", Verdict.SKIPPED: "SKIP"}


def listing(checks: Sequence[Check]) -> str:
    """`--list`: one line per check, rule id first."""
    return "".join(f"{check.rule:<12} {check.title}\n" for check in checks)


def line(outcome: Outcome) -> str:
    """One line per check as it finishes."""
    text = f"{_LABELS[outcome.verdict]:<5} {outcome.check.rule:<12} {outcome.check.title} ({outcome.seconds:.2f} s)"
    return text + (f": {outcome.message}" if outcome.message else "")


def details(outcome: Outcome) -> str:
    """What a failed check sent, got back and expected."""
    return (
        f"{_LABELS[outcome.verdict]} {outcome.check.rule}: {outcome.check.title}\n"
        f"  rule:     {outcome.check.rule} (docs/behaviour.md)\n"
        f"  expected: {outcome.expected}\n"
        f"  sent:     {outcome.sent}\n"
        f"  received: {outcome.received}\n"
    )


def summary(outcomes: Sequence[Outcome], seconds: float) -> str:
    counts = Counter(outcome.verdict for outcome in outcomes)
    failed = [outcome for outcome in outcomes if outcome.counts_as_failure]
    text = "".join(details(outcome) if outcome.expected else line(outcome) + "\n" for outcome in failed)
    if failed:
        text = "\nFailures:\n" + text
    tally = ", ".join(f"{counts[verdict]} {verdict.value}" for verdict in Verdict if counts[verdict])
    rules = sorted({outcome.check.rule for outcome in failed})
    broken = f"; rules not met: {', '.join(rules)}" if rules else ""
    return f"{text}\n{tally or 'no checks'} in {seconds:.1f} s{broken}\n"


def write_json(path: Path, target: str, prefix: str, outcomes: Sequence[Outcome], seconds: float) -> None:
    counts = Counter(outcome.verdict.value for outcome in outcomes)
    document = {
        "target": target,
        "prefix": prefix,
        "seconds": round(seconds, 3),
        "summary": {verdict.value: counts[verdict.value] for verdict in Verdict},
        "checks": [
            {
                "rule": outcome.check.rule,
                "title": outcome.check.title,
                "outcome": outcome.verdict.value,
                "seconds": round(outcome.seconds, 3),
                "expected": outcome.expected,
                "sent": outcome.sent,
                "received": outcome.received,
                "message": outcome.message,
            }
            for outcome in outcomes
        ],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_junit(path: Path, outcomes: Sequence[Outcome], seconds: float) -> None:
    """One testsuite; a testcase per check, classname = its rule id, name = rule id and title."""
    counts = Counter(outcome.verdict for outcome in outcomes)
    suite = ElementTree.Element(
        "testsuite",
        name="sayiir-conformance",
        tests=str(len(outcomes)),
        failures=str(counts[Verdict.FAILED]),
        errors=str(counts[Verdict.ERROR]),
        skipped=str(counts[Verdict.SKIPPED]),
        time=f"{seconds:.3f}",
    )
    for outcome in outcomes:
        case = ElementTree.SubElement(
            suite, "testcase", classname=outcome.check.rule, name=outcome.check.name, time=f"{outcome.seconds:.3f}"
        )
        if outcome.verdict is Verdict.FAILED:
            failure = ElementTree.SubElement(
                case, "failure", message=f"{outcome.check.rule}: expected {outcome.expected}", type="RuleViolation"
            )
            failure.text = details(outcome)
        elif outcome.verdict is Verdict.ERROR:
            ElementTree.SubElement(case, "error", message=outcome.message, type="CheckError")
        elif outcome.verdict is Verdict.SKIPPED:
            ElementTree.SubElement(case, "skipped", message=outcome.message)
    root = ElementTree.Element("testsuites")
    root.append(suite)
    ElementTree.indent(root)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
