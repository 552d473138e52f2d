"""What the pages read from the server: filtered pages, counts, the dispatch scan and one workflow, all with
read RPCs a reader token may call (ListWorkflows, LoadSnapshot, GetSignal)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from sayiir_client import AsyncPersistenceClient, WorkflowPage
from sayiir_client.console.views import STATES
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb

PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
SCAN_PAGE_SIZE = 1000
DEFINITION_HEX_DIGITS = 64


class QueryError(ValueError):
    """A filter the console cannot send; `field` names it, as the server's INVALID_ARGUMENT would."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class WorkflowQuery:
    """The filters and page of the workflows page, as its URL holds them (so a refresh keeps them)."""

    states: tuple[str, ...] = ()
    definition: str = ""
    tag: str = ""
    prefix: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str = ""

    def url(self, **changes: Any) -> str:
        """The workflows page with these filters, changed by `changes` (page_token is dropped unless given)."""
        query = replace(self, **{"page_token": "", **changes})
        pairs = [("state", state) for state in query.states]
        pairs += [(name, value) for name in ("definition", "tag", "prefix") if (value := getattr(query, name))]
        if query.page_size != DEFAULT_PAGE_SIZE:
            pairs.append(("page_size", str(query.page_size)))
        if query.page_token:
            pairs.append(("page_token", query.page_token))
        return f"/workflows?{urlencode(pairs)}" if pairs else "/workflows"

    @property
    def filtered(self) -> bool:
        return bool(self.states or self.definition or self.tag or self.prefix)

    @property
    def definition_hash(self) -> bytes | None:
        return bytes.fromhex(self.definition) if self.definition else None


def parse_query(params: Mapping[str, Sequence[str]]) -> WorkflowQuery:
    """The query of the workflows page's URL; QueryError naming the field for a value the server would refuse."""

    def one(name: str) -> str:
        values = params.get(name, ())
        return values[-1].strip() if values else ""

    states = tuple(dict.fromkeys(params.get("state", ())))
    unknown = [state for state in states if state not in STATES]
    if unknown:
        raise QueryError("state", f"unknown state {unknown[0]!r} (use {', '.join(STATES)})")
    definition = one("definition").lower()
    if definition and (len(definition) != DEFINITION_HEX_DIGITS or not _is_hex(definition)):
        raise QueryError("definition", f"expected {DEFINITION_HEX_DIGITS} hex digits (a definition hash)")
    for name in ("tag", "prefix"):
        if "\x00" in one(name):
            raise QueryError(name, "must not contain NUL characters")
    page_size_text = one("page_size") or str(DEFAULT_PAGE_SIZE)
    if not page_size_text.isdigit() or int(page_size_text) not in PAGE_SIZES:
        raise QueryError("page_size", f"one of {', '.join(map(str, PAGE_SIZES))}")
    return WorkflowQuery(states, definition, one("tag"), one("prefix"), int(page_size_text), one("page_token"))


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)


async def workflows_page(client: AsyncPersistenceClient, query: WorkflowQuery) -> WorkflowPage:
    """The page of summaries the query names, newest first."""
    return await client.list_workflows(
        states=[STATES[state] for state in query.states],
        definition_hash=query.definition_hash,
        tag=query.tag or None,
        prefix=query.prefix,
        page_size=query.page_size,
        page_token=query.page_token,
    )


@dataclass(frozen=True)
class Count:
    count: int
    complete: bool
    """False: there are more than `count`, the console's limit (shown as "1000+")."""


async def count_states(client: AsyncPersistenceClient, query: WorkflowQuery, limit: int) -> dict[str, Count]:
    """How many workflows of each state match the query's other filters, counting each up to `limit`."""

    async def count(state: str) -> Count:
        summaries, complete = await scan(client, [STATES[state]], limit, query)
        return Count(len(summaries), complete)

    counts = await asyncio.gather(*(count(state) for state in STATES))
    return dict(zip(STATES, counts, strict=True))


async def scan(
    client: AsyncPersistenceClient,
    states: Sequence[enums.WorkflowState.ValueType],
    limit: int,
    query: WorkflowQuery = WorkflowQuery(),
) -> tuple[list[pb.WorkflowSummary], bool]:
    """The newest `limit` summaries in these states (and the query's filters), and whether that was all of them."""
    summaries: list[pb.WorkflowSummary] = []
    async for summary in client.iter_workflows(
        states=states,
        definition_hash=query.definition_hash,
        tag=query.tag or None,
        prefix=query.prefix,
        page_size=min(SCAN_PAGE_SIZE, limit + 1),
    ):
        if len(summaries) == limit:
            return summaries, False
        summaries.append(summary)
    return summaries, True


@dataclass(frozen=True)
class Workflow:
    snapshot: pb.WorkflowSnapshot
    pending: dict[str, pb.SignalRequest]
    """The pending "cancel" and "pause" requests."""
    claim: pb.TaskClaim | None
    """The live claim on the current task, as ListWorkflows reports it."""


async def workflow(client: AsyncPersistenceClient, instance_id: str) -> Workflow:
    """One workflow's snapshot, pending requests and live claim; NotFoundError when it does not exist."""
    snapshot, cancel, pause, summary = await asyncio.gather(
        client.load_snapshot(instance_id),
        client.get_signal(instance_id, enums.SIGNAL_KIND_CANCEL),
        client.get_signal(instance_id, enums.SIGNAL_KIND_PAUSE),
        summary_of(client, instance_id),
    )
    pending = {kind: request for kind, request in (("cancel", cancel), ("pause", pause)) if request is not None}
    claim = summary.claim if summary is not None and summary.HasField("claim") else None
    return Workflow(snapshot, pending, claim)


async def summary_of(client: AsyncPersistenceClient, instance_id: str) -> pb.WorkflowSummary | None:
    """The summary of exactly this instance: by id, an id comes before every longer id it prefixes."""
    token = ""
    while True:
        page = await client.list_workflows(
            prefix=instance_id, order=enums.WORKFLOW_ORDER_INSTANCE_ID, page_size=1, page_token=token
        )
        if page.workflows:
            first = page.workflows[0]
            return first if first.instance_id == instance_id else None
        if not page.next_page_token:
            return None
        token = page.next_page_token
