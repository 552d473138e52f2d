"""PAGE: ListSnapshots pages.

A shared server holds other ids, so the pages start after this check's own prefix
(`start_after`) and only their first ids are compared; the rule about the last page
is observed with ids above every ordinary one (they begin with U+10FFFF).
"""

from __future__ import annotations

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import NotObservableError, Trial, check
from sayiir_client.conformance._steps import save
from sayiir_client.v1 import request_response_pb2 as rr

TOP = "\U0010ffff"
"""The highest code point: UTF-8 F4 8F BF BF, so an id starting with it sorts after ordinary ids."""


async def _ids(t: Trial, labels: tuple[str, ...], stem: str) -> list[str]:
    ids = [t.adopt(f"{stem}{label}") for label in labels]
    for instance_id in ids:
        await save(t, build.completed(instance_id, t.definition))
    return ids


@check("PAGE-1.1", "ListSnapshots pages ids in ascending byte order, at most page_size, continuing after the token")
async def _pages_in_order(t: Trial) -> None:
    stem = t.instance("page-")
    ids = await _ids(t, ("b", "é", "a", "c"), stem)
    first = await t.ok(t.stubs.snapshots.ListSnapshots, rr.ListSnapshotsRequest(page_size=2, start_after=stem))
    expected = sorted(ids, key=str.encode)
    t.expect(list(first.instance_ids) == expected[:2] and bool(first.next_page_token), f"{expected[:2]} and a token")
    request = rr.ListSnapshotsRequest(page_size=2, page_token=first.next_page_token)
    second = await t.ok(t.stubs.snapshots.ListSnapshots, request)
    t.expect(list(second.instance_ids) == expected[2:], f"{expected[2:]}: the ids after the first page")


@check("PAGE-1.2", "the last page has no next_page_token, also when it is exactly full")
async def _last_page(t: Trial) -> None:
    stem = f"{TOP * 4}{t.instance('last-')}"
    ids = await _ids(t, ("a", "b"), stem)
    request = rr.ListSnapshotsRequest(page_size=2, start_after=stem)
    page = await t.ok(t.stubs.snapshots.ListSnapshots, request)
    if list(page.instance_ids) != ids:
        raise NotObservableError("other ids sort after this check's: the last page cannot be observed")
    if page.next_page_token:
        following = await t.ok(
            t.stubs.snapshots.ListSnapshots, rr.ListSnapshotsRequest(page_token=page.next_page_token)
        )
        if following.instance_ids:
            raise NotObservableError("another program's ids sort after this check's: the last page is not its own")
        t.expect(False, "an exactly full last page: next_page_token empty", t.exchanges[-2])


@check("PAGE-1.3", "a page_token the server did not issue is INVALID_ARGUMENT naming page_token")
async def _bad_token(t: Trial) -> None:
    request = rr.ListSnapshotsRequest(page_token="not-a-token-the-server-issued!")
    await t.invalid(t.stubs.snapshots.ListSnapshots, request, "page_token")


@check("PAGE-1.4", "walking pages of one id yields every id once, in order")
async def _walk(t: Trial) -> None:
    stem = t.instance("walk-")
    ids = await _ids(t, ("1", "2", "3", "4", "5"), stem)
    seen: list[str] = []
    request = rr.ListSnapshotsRequest(page_size=1, start_after=stem)
    for _ in range(len(ids)):
        page = await t.ok(t.stubs.snapshots.ListSnapshots, request)
        seen.extend(page.instance_ids)
        request = rr.ListSnapshotsRequest(page_size=1, page_token=page.next_page_token)
    t.expect(seen == ids, f"{ids}, each once")
