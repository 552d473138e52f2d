"""The console over plain HTTP: what protects the actions, whoever sends the request (no browser needed)."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import pytest

from sayiir_client import PersistenceClient
from sayiir_client.v1 import enums_pb2 as enums
from tests.console import seed
from tests.console.conftest import WORKER_TOKEN, ConsoleProcess, console_process
from tests.support.server_process import ServerProcess

_TOKEN = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str


def _request(
    console: ConsoleProcess, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
) -> Answer:
    address = urlsplit(console.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read().decode())
    finally:
        connection.close()


def _form_session(console: ConsoleProcess, instance_id: str) -> tuple[str, str]:
    """The CSRF cookie and form token a browser gets with the workflow's page."""
    page = _request(console, "GET", "/workflow?" + urlencode({"id": instance_id}))
    cookie = page.headers["set-cookie"].split(";")[0]
    token = _TOKEN.search(page.body)
    assert token is not None
    return cookie, token.group(1)


def _post(console: ConsoleProcess, action: str, fields: dict[str, str], cookie: str, **headers: str) -> Answer:
    sent = {"content-type": "application/x-www-form-urlencoded", "cookie": cookie, **headers}
    return _request(console, "POST", f"/workflow/{action}", urlencode(fields), sent)


def _cancel_requested(store: PersistenceClient, instance_id: str) -> bool:
    return store.get_signal(instance_id, enums.SIGNAL_KIND_CANCEL) is not None or store.load_snapshot(
        instance_id
    ).HasField("cancelled")


def test_an_action_without_the_form_token_is_refused_and_changes_nothing(
    console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("csrf-missing"))
    cookie, _ = _form_session(console, "csrf-missing")

    answer = _post(console, "cancel", {"id": "csrf-missing", "confirmed": "1"}, cookie)

    assert answer.status == 403
    assert "did not come from this console" in answer.body
    assert not _cancel_requested(store, "csrf-missing")


def test_a_form_token_of_another_cookie_is_refused(console: ConsoleProcess, store: PersistenceClient) -> None:
    seed.save(store, seed.at_task("csrf-other"))
    _, token = _form_session(console, "csrf-other")
    other_cookie, _ = _form_session(console, "csrf-other")

    answer = _post(console, "cancel", {"id": "csrf-other", "csrf": token, "confirmed": "1"}, other_cookie)

    assert answer.status == 403
    assert not _cancel_requested(store, "csrf-other")


def test_a_post_from_another_origin_is_refused_even_with_a_valid_token(
    console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("csrf-origin"))
    cookie, token = _form_session(console, "csrf-origin")
    fields = {"id": "csrf-origin", "csrf": token, "confirmed": "1"}

    answer = _post(console, "cancel", fields, cookie, origin="http://attacker.example")

    assert answer.status == 403
    assert not _cancel_requested(store, "csrf-origin")


def test_an_unconfirmed_action_answers_a_confirmation_page_and_changes_nothing(
    console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("confirm-first"))
    cookie, token = _form_session(console, "confirm-first")

    answer = _post(console, "cancel", {"id": "confirm-first", "csrf": token, "confirmed": "0"}, cookie)

    assert answer.status == 200
    assert '<input type="hidden" name="confirmed" value="1">' in answer.body
    assert not _cancel_requested(store, "confirm-first")


def test_a_confirmed_action_with_its_token_is_performed_and_redirects_to_the_workflow(
    console: ConsoleProcess, store: PersistenceClient
) -> None:
    seed.save(store, seed.at_task("csrf-valid"))
    cookie, token = _form_session(console, "csrf-valid")

    answer = _post(console, "cancel", {"id": "csrf-valid", "csrf": token, "confirmed": "1"}, cookie)

    assert answer.status == 303
    assert answer.headers["location"] == "/workflow?id=csrf-valid&done=cancel&outcome=applied"
    assert store.load_snapshot("csrf-valid").HasField("cancelled")


@pytest.mark.parametrize("action", ["cancel", "pause", "unpause", "event"])
def test_no_action_is_reachable_through_a_get(console: ConsoleProcess, action: str) -> None:
    assert _request(console, "GET", f"/workflow/{action}?id=x&confirmed=1").status == 405


def test_every_page_forbids_scripts_styles_and_requests_from_elsewhere(console: ConsoleProcess) -> None:
    answer = _request(console, "GET", "/workflows")

    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert re.findall(r'(?:src|href)="(https?:)?//', answer.body) == []


def test_the_csrf_cookie_is_http_only_and_same_site_strict(console: ConsoleProcess) -> None:
    cookie = _request(console, "GET", "/workflows").headers["set-cookie"]

    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


def test_a_request_for_another_host_name_is_refused(console: ConsoleProcess) -> None:
    """A DNS-rebinding page reaches the console under its own name, which the console does not answer to."""
    assert _request(console, "GET", "/workflows", headers={"host": "attacker.example"}).status == 400


def test_the_raw_snapshot_is_json(console: ConsoleProcess, store: PersistenceClient) -> None:
    seed.save(store, seed.at_task("json-1"))

    answer = _request(console, "GET", "/workflow/snapshot.json?id=json-1")

    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert '"instanceId": "json-1"' in answer.body


def _console_exit(*flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sayiir_client.console", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--listen", "nowhere"), "--listen: expected HOST:PORT, got 'nowhere'"),
        (("--cert", "client.pem"), "--cert and --key go together (mTLS needs both)"),
        (("--ca", "/no/such/ca.pem"), "--ca: no such file: /no/such/ca.pem"),
        (("--timeout", "soon"), "--timeout: expected a number of seconds, got 'soon'"),
    ],
)
def test_a_bad_flag_is_one_error_line_and_exit_code_2(flags: tuple[str, ...], message: str) -> None:
    result = _console_exit(*flags)

    assert result.returncode == 2
    assert result.stderr == f"sayiir-console: {message}\n"


def test_the_console_starts_while_the_server_is_down_and_says_so_on_its_pages() -> None:
    with console_process("127.0.0.1:1", WORKER_TOKEN, "--timeout", "1") as down:
        answer = _request(down, "GET", "/workflows")

    assert answer.status == 503
    assert "cannot list workflows: unavailable" in answer.body


def test_a_count_past_the_scan_limit_is_shown_as_at_least_the_limit(
    server: ServerProcess, store: PersistenceClient
) -> None:
    seed.save(store, *(seed.at_task(f"capped-{n}") for n in range(3)), seed.completed("capped-done"))

    with console_process(server.address, WORKER_TOKEN, "--scan-limit", "2") as capped:
        body = _request(capped, "GET", "/workflows?prefix=capped-").body

    assert '<b data-state-count="in_progress">2+</b>' in body
    assert '<b data-state-count="completed">1</b>' in body


def test_without_the_console_extra_the_console_says_what_to_install() -> None:
    # None in sys.modules makes `import starlette` fail, as it does where the extra is not installed.
    program = "; ".join(
        [
            "import sys",
            "sys.modules['starlette'] = None",
            "from sayiir_client.console import main",
            "raise SystemExit(main([]))",
        ]
    )

    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode == 2
    assert "install the console extra (pip install 'sayiir-persistence-client[console]')" in result.stderr
