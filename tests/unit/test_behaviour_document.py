"""docs/behaviour.md stays true to the tests: every test its appendix names exists, and every rule has a row."""

from __future__ import annotations

import re
from pathlib import Path

from sayiir_client.conformance import REGISTRY, checks

assert checks  # importing the package registers every conformance check

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = (ROOT / "docs" / "behaviour.md").read_text()
APPENDIX = DOCUMENT.split("## Appendix", 1)[1]
RULE = re.compile(r"^- \*\*([A-Z]+(?:-[A-Z]+)?-\d+\.\d+)\*\*", re.MULTILINE)
CITED_TEST = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)")


def test_every_test_the_appendix_names_exists() -> None:
    missing = []
    for path, name in CITED_TEST.findall(APPENDIX):
        source = ROOT / path
        if not source.exists() or not re.search(rf"def {name}\(", source.read_text()):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_every_rule_has_a_row_in_the_appendix() -> None:
    rules = RULE.findall(DOCUMENT.split("## Appendix", 1)[0])
    rows = set(re.findall(r"^\| ([A-Z]+(?:-[A-Z]+)?-\d+\.\d+) \|", APPENDIX, re.MULTILINE))
    assert [rule for rule in rules if rule not in rows] == []


def test_every_conformance_check_names_a_rule_of_the_document() -> None:
    rules = set(RULE.findall(DOCUMENT.split("## Appendix", 1)[0]))
    assert sorted({check.rule for check in REGISTRY.checks} - rules) == []
