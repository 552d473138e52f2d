"""The console in a real headless Chromium, against a real server: what an operator sees and does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from playwright.sync_api import Dialog, Page, expect

from sayiir_client import PersistenceClient
from sayiir_client.v1 import enums_pb2 as enums
from tests.console import seed
from tests.console.conftest import ConsoleProcess

pytestmark = pytest.mark.timeout(60)


def _accept(page: Page) -> list[str]:
    """Accept the next confirmation and return the list its question lands in."""
    questions: list[str] = []

    def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    return questions


def _workflow_url(console: ConsoleProcess, instance_id: str) -> str:
    return f"{console.url}/workflow?id={quote(instance_id, safe='')}"


def _rows(page: Page) -> list[str]:
    return page.locator("table.workflows a.instance").all_inner_texts()


# --- the workflows page -----------------------------------------------------------------------------------------


def test_the_workflows_page_counts_each_state_and_lists_the_newest_first(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    now = datetime.now(UTC)
    seed.save(
        store,
        seed.at_task("count-old", updated=now - timedelta(hours=2)),
        seed.at_task("count-new", updated=now - timedelta(minutes=1)),
        seed.completed("count-done", updated=now - timedelta(minutes=30)),
        seed.failed("count-failed"),
    )

    page.goto(f"{console.url}/workflows?prefix=count-")

    counts = {
        state: page.locator(f"[data-state-count={state}]").inner_text()
        for state in ("in_progress", "completed", "failed", "paused", "cancelled")
    }
    assert counts == {"in_progress": "2", "completed": "1", "failed": "1", "paused": "0", "cancelled": "0"}
    assert _rows(page) == ["count-failed", "count-new", "count-done", "count-old"]


def test_filtering_by_state_and_prefix_keeps_the_filter_when_the_list_refreshes(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("filter-running"), seed.completed("filter-done"), seed.completed("other-done"))
    page.goto(f"{console.url}/workflows")

    page.get_by_label("Id prefix").fill("filter-")
    page.get_by_label("Completed").check()
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.workflows a.instance")).to_have_text(["filter-done"])

    seed.save(store, seed.completed("filter-done-later"), seed.at_task("filter-running-later"))
    expect(page.locator("table.workflows a.instance")).to_have_text(["filter-done-later", "filter-done"])
    assert page.get_by_label("Id prefix").input_value() == "filter-"
    assert page.get_by_label("Completed").is_checked()
    assert "state=completed" in page.url


def test_a_tag_or_a_definition_in_the_list_filters_by_it(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(
        store,
        seed.at_task("tagged-eu", tags=("region-eu",)),
        seed.at_task("tagged-us", tags=("region-us",)),
        seed.at_task("tagged-other-definition", tags=("region-eu",), definition=seed.OTHER_DEFINITION),
    )
    page.goto(f"{console.url}/workflows?prefix=tagged-")

    page.locator("tr[data-instance=tagged-eu] a.tag").click()
    expect(page.locator("table.workflows a.instance")).to_have_text(["tagged-other-definition", "tagged-eu"])

    page.locator("tr[data-instance=tagged-eu] td a[title]").click()
    expect(page.locator("table.workflows a.instance")).to_have_text(["tagged-eu"])
    assert page.get_by_label("Definition").input_value() == seed.DEFINITION.hex()


def test_the_list_is_paged_newest_first(page: Page, console: ConsoleProcess, store: PersistenceClient) -> None:
    now = datetime.now(UTC)
    seed.save(store, *(seed.at_task(f"paged-{n:02}", updated=now - timedelta(seconds=n)) for n in range(30)))

    page.goto(f"{console.url}/workflows?prefix=paged-&page_size=25")
    assert _rows(page) == [f"paged-{n:02}" for n in range(25)]

    page.get_by_role("link", name="Next page").click()
    assert _rows(page) == [f"paged-{n:02}" for n in range(25, 30)]
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)


def test_a_bad_filter_is_refused_naming_the_field(page: Page, console: ConsoleProcess) -> None:
    response = page.goto(f"{console.url}/workflows?definition=abc")

    assert response is not None
    assert response.status == 400
    expect(page.get_by_role("alert")).to_have_text("Bad filter: definition: expected 64 hex digits (a definition hash)")


# --- one workflow -----------------------------------------------------------------------------------------------


def test_a_workflow_shows_its_position_completed_tasks_retries_claim_and_tags(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    done = (("reserve-stock", b'{"reserved": 3}'), ("price", bytes(range(40))))
    seed.save(store, seed.failing("story-1", done=done, tags=("payments", "eu"), priority=2))
    seed.claim(store, "story-1", "worker-a", ttl_seconds=240)
    page.goto(f"{console.url}/workflows?prefix=story-")

    page.get_by_role("link", name="story-1").click()

    expect(page.locator("#state")).to_have_text("InProgress")
    expect(page.locator("#position")).to_have_text("AtTask")
    timeline = page.locator("ol.timeline li")
    expect(timeline).to_have_count(2)
    expect(timeline.nth(0)).to_contain_text('15 B {"reserved": 3}')
    expect(timeline.nth(1)).to_contain_text("40 B 00 01 02 03")
    expect(timeline.nth(1)).to_contain_text("(latest)")
    retries = page.locator("table.retries tbody tr")
    expect(retries).to_contain_text("2 of 6")
    expect(retries).to_contain_text("card declined: insufficient funds")
    expect(retries).to_contain_text("worker-b")
    expect(page.locator("#claim")).to_contain_text("worker-a")
    expect(page.locator("#claim time[data-countdown]")).to_have_text(re.compile(r"^in (3|4) min \d+ s$"))
    expect(page.locator("dl.facts")).to_contain_text("payments")
    expect(page.locator("dl.facts dt:text-is('Priority') + dd")).to_have_text("2")


def test_the_raw_snapshot_is_shown_as_json_on_demand(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("raw-1"))
    page.goto(_workflow_url(console, "raw-1"))
    expect(page.locator("#raw-json")).not_to_be_visible()

    page.get_by_text("Raw snapshot (JSON)").click()

    expect(page.locator("#raw-json")).to_contain_text('"instanceId": "raw-1"')


def test_a_missing_workflow_is_not_found(page: Page, console: ConsoleProcess) -> None:
    response = page.goto(_workflow_url(console, "never-saved"))

    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("No workflow never-saved")


# --- actions ----------------------------------------------------------------------------------------------------


def test_cancelling_a_workflow_asks_first_and_then_shows_it_cancelled(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("cancel-me"))
    page.goto(_workflow_url(console, "cancel-me"))
    expect(page.locator("#state")).to_have_text("InProgress")

    questions = _accept(page)
    page.get_by_label("cancel reason").fill("customer asked")
    page.get_by_label("cancelled by").fill("ops-alice")
    page.get_by_role("button", name="Cancel", exact=True).click()

    expect(page.locator("#state")).to_have_text("Cancelled")
    expect(page.get_by_role("status")).to_have_text("Cancelled.")
    assert questions == ["Cancel workflow cancel-me?"]
    cancelled = store.load_snapshot("cancel-me").cancelled
    assert (cancelled.reason, cancelled.cancelled_by) == ("customer asked", "ops-alice")


def test_declining_the_confirmation_changes_nothing(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("keep-me"))
    page.goto(_workflow_url(console, "keep-me"))

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel", exact=True).click()

    expect(page.locator("#state")).to_have_text("InProgress")
    assert store.load_snapshot("keep-me").HasField("in_progress")
    assert store.get_signal("keep-me", enums.SIGNAL_KIND_CANCEL) is None


def test_a_refused_action_shows_the_servers_typed_error(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.completed("already-done"))
    page.goto(_workflow_url(console, "already-done"))

    _accept(page)
    page.get_by_role("button", name="Cancel", exact=True).click()

    expect(page.get_by_role("alert")).to_have_text("cannot cancel: Completed")
    expect(page.locator("#state")).to_have_text("Completed")


def test_cancelling_a_claimed_workflow_leaves_the_request_pending_for_its_worker(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("claimed-1"))
    seed.claim(store, "claimed-1", "worker-c")
    page.goto(_workflow_url(console, "claimed-1"))

    _accept(page)
    page.get_by_role("button", name="Cancel", exact=True).click()

    expect(page.get_by_role("status")).to_contain_text("Cancel requested")
    expect(page.locator("#state")).to_have_text("InProgress")
    expect(page.locator("[data-pending=cancel]")).to_be_visible()


def test_pausing_then_unpausing_a_workflow(page: Page, console: ConsoleProcess, store: PersistenceClient) -> None:
    seed.save(store, seed.at_task("pause-me"))
    page.goto(_workflow_url(console, "pause-me"))

    _accept(page)
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.locator("#state")).to_have_text("Paused")
    _accept(page)
    page.get_by_role("button", name="Unpause").click()

    expect(page.locator("#state")).to_have_text("InProgress")
    expect(page.get_by_role("status")).to_have_text("Unpaused.")
    assert store.load_snapshot("pause-me").HasField("in_progress")


def test_sending_an_event_appends_its_payload(page: Page, console: ConsoleProcess, store: PersistenceClient) -> None:
    seed.save(store, seed.at_task("event-me"))
    page.goto(_workflow_url(console, "event-me"))

    _accept(page)
    page.get_by_label("event name").fill("approved")
    page.get_by_label("event payload").fill('{"by": "ops-bob"}')
    page.get_by_role("button", name="Send event").click()

    expect(page.get_by_role("status")).to_have_text("Event sent.")
    assert store.consume_event("event-me", "approved") == b'{"by": "ops-bob"}'


# --- safety -----------------------------------------------------------------------------------------------------

MARKUP_ID = "<img src=x onerror=alert(1)>"


def test_an_instance_id_made_of_markup_is_shown_as_text(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.failing(MARKUP_ID, tags=("<b>tag</b>",)))
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)

    page.goto(f"{console.url}/workflows?prefix={quote('<img')}")
    expect(page.locator("table.workflows a.instance")).to_have_text([MARKUP_ID])
    expect(page.locator("table.workflows a.tag")).to_have_text(["<b>tag</b>"])
    page.get_by_role("link", name=MARKUP_ID).click()

    expect(page.locator("h1 .instance-id")).to_have_text(MARKUP_ID)
    assert page.locator("img").count() == 0
    assert page.locator("main b:text-is('tag')").count() == 0
    assert dialogs == []


def test_a_reader_token_gets_no_actions(
    page: Page, console: ConsoleProcess, reader_console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("read-only-1"))

    page.goto(_workflow_url(reader_console, "read-only-1"))

    expect(page.locator("#state")).to_have_text("InProgress")
    expect(page.locator("#role")).to_have_text("read-only (reader token)")
    expect(page.locator("form[method=post]")).to_have_count(0)
    assert reader_console.role == "read-only (reader token)"
    assert console.role == "read and act"


def test_every_request_of_the_pages_goes_to_the_console_itself(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.failing("local-1", done=(("a", b"x"),)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{console.url}/workflows")
    page.goto(_workflow_url(console, "local-1"))
    page.get_by_text("Raw snapshot (JSON)").click()
    with page.expect_request(f"{console.url}/dispatch"):  # the first refresh round
        page.goto(f"{console.url}/dispatch")
    with page.expect_request(f"{console.url}/dispatch"):
        pass

    assert requested
    assert [url for url in requested if not url.startswith(console.url + "/")] == []


# --- dispatch ---------------------------------------------------------------------------------------------------


def _ready(page: Page) -> dict[int, int]:
    return {priority: int(page.locator(f"td[data-priority='{priority}']").inner_text()) for priority in range(1, 6)}


def test_the_dispatch_page_counts_ready_tasks_per_priority_and_claims_per_worker(
    page: Page, console: ConsoleProcess, store: PersistenceClient
) -> None:
    page.goto(f"{console.url}/dispatch")
    before = _ready(page)
    seed.save(
        store,
        seed.at_task("dispatch-urgent-1", priority=1),
        seed.at_task("dispatch-urgent-2", priority=1),
        seed.at_task("dispatch-low", priority=5),
        seed.at_task("dispatch-held-1", priority=4),
        seed.at_task("dispatch-held-2", priority=4),
    )
    seed.claim(store, "dispatch-held-1", "worker-dispatch")
    seed.claim(store, "dispatch-held-2", "worker-dispatch")

    page.reload()

    after = _ready(page)
    assert {priority: after[priority] - before[priority] for priority in after} == {1: 2, 2: 0, 3: 0, 4: 0, 5: 1}
    expect(page.locator("table.workers tr", has_text="worker-dispatch")).to_contain_text("2")
