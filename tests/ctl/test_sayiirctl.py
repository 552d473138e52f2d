"""`sayiirctl` as an operator runs it: a process against a `sayiir-server serve` process, on every backend."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from pathlib import Path

from sayiir_client import PersistenceClient
from sayiir_client.ctl.exit_codes import ExitCode
from sayiir_client.v1 import enums_pb2 as enums
from tests.contract.builders import (
    DEFINITION_HASH,
    OTHER_DEFINITION_HASH,
    at_task,
    completed,
    paused,
    seconds_from_now,
    signal_request,
    task_id,
    with_retry,
)
from tests.ctl.conftest import sayiirctl
from tests.support.server_process import ServerProcess

SUMMARY_KEYS = [
    "instance_id",
    "definition_hash",
    "state",
    "position",
    "current_task_id",
    "priority",
    "tags",
    "created_at",
    "updated_at",
    "pending_cancel",
    "pending_pause",
    "claim",
    "retry_attempts",
    "next_retry_at",
]
SHOW_KEYS = [*SUMMARY_KEYS, "completed_tasks", "retries", "final_output_bytes", "error", "stopped"]
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def listed(server: ServerProcess, ids: str, *flags: str) -> list[str]:
    run = sayiirctl("workflow", "list", "--prefix", ids, "--output", "json", *flags, server=server.address)
    assert run.code == ExitCode.OK, run.stderr
    return [line["instance_id"] for line in run.json_lines()]


def test_run_start_creates_the_run_that_workflow_list_shows(server: ServerProcess, ids: str) -> None:
    started = sayiirctl(
        "run", "start", f"{ids}order-1", "--definition", "orders/v1", "--first-task", "fetch", "--input", "{}",
        "--tag", "eu", "--priority", "2", server=server.address,
    )  # fmt: skip
    table = sayiirctl("workflow", "list", "--prefix", ids, server=server.address)

    assert (started.code, started.stdout) == (
        0,
        f"started {ids}order-1: in_progress at task {task_id('fetch').hex()[:12]}\n",
    )
    header, row = table.stdout.splitlines()
    assert header.split() == [
        "INSTANCE",
        "STATE",
        "POSITION",
        "TASK",
        "PRI",
        "TAGS",
        "UPDATED",
        "CLAIMED",
        "BY",
        "RETRY",
        "PENDING",
    ]
    assert row.split()[:6] == [f"{ids}order-1", "in_progress", "at_task", task_id("fetch").hex()[:12], "2", "eu"]
    assert "(just now)" in row or "s ago)" in row
    assert "\x1b[" not in table.stdout  # no colour on a pipe


def test_workflow_list_json_has_one_line_per_workflow_with_every_key_and_whole_hashes(
    server: ServerProcess, client: PersistenceClient, ids: str
) -> None:
    client.save_snapshot(at_task(f"{ids}a", "fetch", tags=["eu"]))
    client.save_snapshot(completed(f"{ids}b"))

    lines = sayiirctl("workflow", "list", "--prefix", ids, "-o", "json", server=server.address).json_lines()

    assert [list(line) for line in lines] == [SUMMARY_KEYS, SUMMARY_KEYS]
    by_id = {line["instance_id"]: line for line in lines}
    assert HEX64.match(by_id[f"{ids}a"]["definition_hash"])
    assert by_id[f"{ids}a"]["current_task_id"] == task_id("fetch").hex()
    assert (by_id[f"{ids}b"]["state"], by_id[f"{ids}b"]["position"], by_id[f"{ids}b"]["current_task_id"]) == (
        "completed",
        None,
        None,
    )
    assert by_id[f"{ids}a"]["updated_at"].endswith("Z")


def test_workflow_list_filters_by_state_definition_tag_and_prefix(
    server: ServerProcess, client: PersistenceClient, ids: str
) -> None:
    client.save_snapshot(at_task(f"{ids}eu-1", tags=["eu"]))
    other = at_task(f"{ids}us-1", tags=["us"])
    other.definition_hash = OTHER_DEFINITION_HASH
    client.save_snapshot(other)
    client.save_snapshot(completed(f"{ids}eu-2"))

    assert sorted(listed(server, ids, "--state", "completed")) == [f"{ids}eu-2"]
    assert sorted(listed(server, ids, "--state", "in-progress", "--state", "completed")) == [
        f"{ids}eu-1",
        f"{ids}eu-2",
        f"{ids}us-1",
    ]
    assert listed(server, ids, "--definition", OTHER_DEFINITION_HASH.hex()) == [f"{ids}us-1"]
    assert listed(server, ids, "--tag", "eu") == [f"{ids}eu-1"]
    assert listed(server, f"{ids}eu-") == [f"{ids}eu-2", f"{ids}eu-1"]  # newest first
    assert listed(server, ids, "--order", "id") == [f"{ids}eu-1", f"{ids}eu-2", f"{ids}us-1"]


def test_workflow_list_stops_at_the_limit_and_says_more_match_on_stderr(
    server: ServerProcess, client: PersistenceClient, ids: str
) -> None:
    for number in range(3):
        client.save_snapshot(at_task(f"{ids}{number}"))

    table = sayiirctl("workflow", "list", "--prefix", ids, "--limit", "2", server=server.address)
    json_run = sayiirctl("workflow", "list", "--prefix", ids, "--limit", "2", "-o", "json", server=server.address)

    assert len(table.stdout.splitlines()) == 1 + 2
    assert "more workflows match" in table.stderr
    assert (len(json_run.json_lines()), json_run.stderr) == (2, "")


def test_workflow_show_reports_position_claim_retries_completed_tasks_and_pending_requests(
    server: ServerProcess, client: PersistenceClient, ids: str
) -> None:
    instance = f"{ids}order-1"
    snapshot = at_task(instance, "charge", completed={"fetch": b"x" * 2048}, priority=1, tags=["eu"])
    client.save_snapshot(with_retry(snapshot, "charge", next_retry_at=seconds_from_now(-1), last_failed_worker="w-0"))
    client.claim_task(instance, task_id("charge"), "worker-7", timedelta(minutes=5))
    client.store_signal(instance, enums.SIGNAL_KIND_CANCEL, signal_request("wrong address", "alice"))

    shown = sayiirctl("workflow", "show", instance, "-o", "json", server=server.address).json()
    table = sayiirctl("workflow", "show", instance, server=server.address).stdout

    assert list(shown) == SHOW_KEYS
    assert shown["position"] == {"kind": "at_task", "task_id": task_id("charge").hex()}
    assert shown["completed_tasks"] == [{"task_id": task_id("fetch").hex(), "output_bytes": 2048}]
    assert (shown["claim"]["worker_id"], shown["claim"]["task_id"]) == ("worker-7", task_id("charge").hex())
    assert shown["pending_cancel"]["reason"] == "wrong address"
    assert shown["pending_cancel"]["requested_by"] == "alice"
    assert (shown["retries"][0]["attempts"], shown["retries"][0]["last_error"]) == (1, "timeout")
    assert (shown["retry_attempts"], shown["priority"], shown["tags"]) == (1, 1, ["eu"])
    assert re.search(r"^Claim\s+worker-7, expires \S+ \(in [45]m\)$", table, re.MULTILINE), table
    assert re.search(r"^Cancel asked\s+by alice at .* \(wrong address\)$", table, re.MULTILINE), table
    assert re.search(rf"^{task_id('fetch').hex()[:12]}\s+2\.0 KiB$", table, re.MULTILINE), table
    assert re.search(r"^Position\s+at task " + task_id("charge").hex()[:12] + "$", table, re.MULTILINE), table


def test_times_are_shown_in_the_local_zone(server: ServerProcess, client: PersistenceClient, ids: str) -> None:
    client.save_snapshot(at_task(f"{ids}order-1"))

    tokyo = sayiirctl("workflow", "show", f"{ids}order-1", server=server.address, env={"TZ": "Asia/Tokyo"})
    utc = sayiirctl("workflow", "show", f"{ids}order-1", server=server.address)

    assert re.search(r"^Updated\s+\S+ \S+ JST \(", tokyo.stdout, re.MULTILINE), tokyo.stdout
    assert re.search(r"^Updated\s+\S+ \S+ UTC \(", utc.stdout, re.MULTILINE), utc.stdout


def test_workflow_show_of_a_missing_instance_exits_not_found(server: ServerProcess, ids: str) -> None:
    run = sayiirctl("workflow", "show", f"{ids}missing", server=server.address)

    assert run.code == 3  # ExitCode.NOT_FOUND
    assert run.stdout == ""
    assert run.stderr.startswith("sayiirctl: not found: ")
    assert len(run.stderr.splitlines()) == 1


def test_a_cancel_of_a_run_nobody_holds_is_applied_at_once(
    server: ServerProcess, client: PersistenceClient, ids: str
) -> None:
    client.save_snapshot(at_task(f"{ids}order-0"))

    cancel = sayiirctl("workflow", "cancel", f"{ids}order-0", "--by", "bob", server=server.address)

    assert (cancel.code, cancel.stdout) == (0, f"cancelled: {ids}order-0 by bob (no worker held the run)\n")
    assert client.load_snapshot(f"{ids}order-0").WhichOneof("state") == "cancelled"


def test_cancel_and_pause_of_a_held_run_store_requests_with_reason_and_requester(
    server: ServerProcess, client: PersistenceClient, ids: str
) -> None:
    client.save_snapshot(at_task(f"{ids}order-1"))
    assert client.claim_task(f"{ids}order-1", task_id("fetch"), "worker-1", timedelta(minutes=5))

    cancel = sayiirctl(
        "workflow", "cancel", f"{ids}order-1", "--reason", "duplicate", "--by", "bob", server=server.address
    )
    pause = sayiirctl("workflow", "pause", f"{ids}order-1", "--by", "carol", "-o", "json", server=server.address)

    held = f"cancel requested for {ids}order-1 by bob: a worker holds the run and applies it at its next boundary\n"
    assert (cancel.code, cancel.stdout) == (0, held)
    assert pause.json()["applied"] is False
    assert pause.json()["action"] == "pause"
    assert pause.json()["requested_by"] == "carol"
    stored = client.get_signal(f"{ids}order-1", enums.SIGNAL_KIND_CANCEL)
    assert stored is not None
    assert (stored.reason, stored.requested_by) == ("duplicate", "bob")
    assert client.get_signal(f"{ids}order-1", enums.SIGNAL_KIND_PAUSE) is not None


def test_cancelling_a_completed_run_is_refused(server: ServerProcess, client: PersistenceClient, ids: str) -> None:
    client.save_snapshot(completed(f"{ids}done"))

    run = sayiirctl("workflow", "cancel", f"{ids}done", server=server.address)

    assert run.code == 4  # ExitCode.REFUSED
    assert run.stderr.startswith("sayiirctl: refused: ")


def test_unpause_resumes_a_paused_run_and_is_refused_for_a_running_one(
    server: ServerProcess, client: PersistenceClient, ids: str
) -> None:
    client.save_snapshot(paused(f"{ids}held"))
    client.save_snapshot(at_task(f"{ids}running"))

    resumed = sayiirctl("workflow", "unpause", f"{ids}held", "-o", "json", server=server.address)
    refused = sayiirctl("workflow", "unpause", f"{ids}running", server=server.address)

    assert resumed.json() == {"instance_id": f"{ids}held", "action": "unpause", "state": "in_progress"}
    assert refused.code == ExitCode.REFUSED


def test_event_send_takes_the_payload_as_text_from_a_file_or_from_stdin(
    server: ServerProcess, client: PersistenceClient, ids: str, tmp_path: Path
) -> None:
    (tmp_path / "payload.bin").write_bytes(b"\x00\x01 binary")
    instance = f"{ids}order-1"

    text = sayiirctl("event", "send", instance, "approved", "--payload", "yes", server=server.address)
    sayiirctl(
        "event", "send", instance, "approved", "--payload-file", str(tmp_path / "payload.bin"), server=server.address
    )
    piped = sayiirctl("event", "send", instance, "approved", "-", "-o", "json", server=server.address, stdin=b"piped")

    assert (text.code, text.stdout) == (0, f"event 'approved' sent to {instance} (3 B)\n")
    assert piped.json() == {"instance_id": instance, "signal_name": "approved", "payload_bytes": 5}
    assert [client.consume_event(instance, "approved") for _ in range(3)] == [b"yes", b"\x00\x01 binary", b"piped"]


def test_task_result_prints_the_output_of_a_task_named_or_given_in_hex(
    server: ServerProcess, client: PersistenceClient, ids: str
) -> None:
    client.save_snapshot(at_task(f"{ids}order-1", "charge", completed={"fetch": b"\xff raw output"}))

    by_name = sayiirctl("task", "result", f"{ids}order-1", "fetch", server=server.address)
    by_hex = sayiirctl("task", "result", f"{ids}order-1", task_id("fetch").hex(), "-o", "json", server=server.address)
    never_ran = sayiirctl("task", "result", f"{ids}order-1", "charge", server=server.address)

    assert (by_name.code, by_name.output) == (0, b"\xff raw output")  # as it is, for `> file`
    assert by_hex.json() == {
        "instance_id": f"{ids}order-1",
        "task_id": task_id("fetch").hex(),
        "output_bytes": 12,
        "output_text": None,
        "output_base64": base64.b64encode(b"\xff raw output").decode(),
    }
    assert never_ran.code == ExitCode.NOT_FOUND


def test_run_start_of_an_existing_instance_is_refused_unless_the_policy_says_otherwise(
    server: ServerProcess, ids: str
) -> None:
    start = ("run", "start", f"{ids}order-1", "--definition", DEFINITION_HASH.hex(), "--first-task", "fetch")
    sayiirctl(*start, server=server.address)

    refused = sayiirctl(*start, server=server.address)
    kept = sayiirctl(*start, "--policy", "use-existing", "-o", "json", server=server.address)
    restarted = sayiirctl(*start, "--policy", "terminate-existing", "-o", "json", server=server.address)

    assert (refused.code, refused.stderr) == (
        ExitCode.REFUSED,
        f"sayiirctl: refused: workflow instance '{ids}order-1' already exists\n",
    )
    assert kept.json() == {"instance_id": f"{ids}order-1", "outcome": "existing", "state": "in_progress"}
    assert restarted.json() == {"instance_id": f"{ids}order-1", "outcome": "started", "state": "in_progress"}


def test_output_format_and_server_come_from_the_environment_and_flags_win(server: ServerProcess, ids: str) -> None:
    from_env = sayiirctl(
        "workflow", "list", "--prefix", ids, env={"SAYIIR_OUTPUT": "json", "SAYIIR_SERVER": server.address}
    )
    flag_wins = sayiirctl("workflow", "list", "--server", server.address, env={"SAYIIR_SERVER": "127.0.0.1:1"})

    assert (from_env.code, from_env.stdout) == (0, "")  # JSON lines: none for an empty listing, not even a header
    assert flag_wins.code == ExitCode.OK


def test_workflow_show_says_who_paused_a_run_why_and_when(
    server: ServerProcess, client: PersistenceClient, ids: str
) -> None:
    client.save_snapshot(paused(f"{ids}held"))

    shown = sayiirctl("workflow", "show", f"{ids}held", "-o", "json", server=server.address).json()
    table = sayiirctl("workflow", "show", f"{ids}held", server=server.address).stdout

    assert (shown["state"], shown["stopped"]["by"], shown["stopped"]["reason"]) == ("paused", "operator", "maintenance")
    assert re.search(r"^Stopped\s+by operator at \S+ \(.*\) \(maintenance\)$", table, re.MULTILINE), table
