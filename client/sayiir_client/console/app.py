"""The console's web application: server-rendered pages over the typed client, and the POSTed actions.

Every value from storage reaches the page through Jinja2 with autoescaping on, and the Content-Security-Policy
allows scripts, styles and requests only from the console itself: nothing is loaded from elsewhere, and an
escaping mistake would still not run a script.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sayiir_client import AsyncPersistenceClient, NotFoundError
from sayiir_client.console import actions, reads, views
from sayiir_client.console.access import Access
from sayiir_client.console.connection import ConnectionSettings, open_client
from sayiir_client.console.csrf import COOKIE, FIELD, CsrfGuard
from sayiir_client.v1 import enums_pb2 as enums

logger = logging.getLogger("sayiir_client.console")

PACKAGE = Path(__file__).parent
MAX_FORM_BYTES = 1024 * 1024
"""Largest POSTed form (an event's payload is most of it)."""

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class ConsoleOptions:
    connection: ConnectionSettings
    read_only: bool = False
    refresh_seconds: float = 5.0
    """How often pages reload their data; 0: never."""
    scan_limit: int = 1000
    """Counts and the dispatch scan stop after this many workflows (each state counted on its own)."""
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    """Host headers served; others are refused, so a DNS-rebinding page cannot read the console."""


class _SecurityHeaders:
    """Adds SECURITY_HEADERS to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        state_choices=[(state, views.STATE_NAMES[value]) for state, value in views.STATES.items()],
        page_sizes=reads.PAGE_SIZES,
    )
    return Jinja2Templates(env=environment)


class Console:
    """The routes, over one client (opened by the application's lifespan) and the console's options."""

    def __init__(self, options: ConsoleOptions, clock: Callable[[], datetime]) -> None:
        self.options = options
        self.clock = clock
        self.templates = _templates()
        self.guard = CsrfGuard()
        self._client: AsyncPersistenceClient | None = None
        self._access: Access | None = None

    @property
    def client(self) -> AsyncPersistenceClient:
        assert self._client is not None, "the application's lifespan opens the client"
        return self._client

    @property
    def access(self) -> Access:
        assert self._access is not None, "the application's lifespan opens the client"
        return self._access

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._client = open_client(self.options.connection)
        self._access = Access(self._client, self.options.read_only)
        try:
            await self._access.can_act()
        except actions.ERRORS as error:  # the pages say so too; the server may come up later
            logger.warning("%s", actions.refusal("reach the server", error).message)
        try:
            yield
        finally:
            await self._client.close()

    def routes(self) -> list[Route | Mount]:
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/workflows", self.workflows, methods=["GET"]),
            Route("/workflow", self.workflow, methods=["GET"]),
            Route("/workflow/snapshot.json", self.snapshot_json, methods=["GET"]),
            Route("/workflow/{action:str}", self.act, methods=["POST"]),
            Route("/dispatch", self.dispatch, methods=["GET"]),
            Mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static"),
        ]

    # --- rendering --------------------------------------------------------------------------------------------

    def render(self, request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
        """The page, with what every page shows, and the CSRF cookie when the browser has none yet."""
        cookie = request.cookies.get(COOKIE)
        new_cookie = not self.guard.valid_cookie(cookie)
        if cookie is None or new_cookie:
            cookie = self.guard.new_cookie()
        context.update(
            csrf_field=FIELD,
            csrf_token=self.guard.token(cookie),
            server=self.client.description,
            role=self.access.role,
            refresh_seconds=self.options.refresh_seconds,
            as_of=views.absolute(self.clock()),
        )
        context.setdefault("error", None)
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        if new_cookie:
            response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", path="/")
        return response

    def problem(self, request: Request, refusal: actions.Refusal) -> Response:
        return self.render(request, "problem.html", {"error": refusal.message}, refusal.status)

    # --- pages ------------------------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/workflows", status_code=303)

    async def workflows(self, request: Request) -> Response:
        params = parse_qs(request.url.query, keep_blank_values=True)
        try:
            query = reads.parse_query(params)
        except reads.QueryError as error:
            context = {"query": reads.WorkflowQuery(), "error": f"Bad filter: {error}", "counts": None, "rows": []}
            return self.render(request, "workflows.html", {**context, "next_url": None, "refresh_url": None}, 400)
        try:
            counts, page = await asyncio.gather(
                reads.count_states(self.client, query, self.options.scan_limit),
                reads.workflows_page(self.client, query),
            )
        except actions.ERRORS as error:
            return self.problem(request, actions.refusal("list workflows", error))
        now = self.clock()
        context = {
            "query": query,
            "counts": [(state, views.STATE_NAMES[views.STATES[state]], count) for state, count in counts.items()],
            "rows": [views.summary_row(summary, now) for summary in page.workflows],
            "next_url": query.url(page_token=page.next_page_token) if page.next_page_token else None,
            "refresh_url": query.url(page_token=query.page_token),
        }
        return self.render(request, "workflows.html", context)

    async def workflow(self, request: Request) -> Response:
        instance_id = request.query_params.get("id", "")
        outcome = actions.OUTCOMES.get((request.query_params.get("done", ""), request.query_params.get("outcome", "")))
        return await self.workflow_page(request, instance_id, notice=outcome)

    async def workflow_page(
        self,
        request: Request,
        instance_id: str,
        *,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        if not instance_id:
            return self.problem(request, actions.Refusal(400, "which workflow? (the id parameter is missing)"))
        try:
            found = await reads.workflow(self.client, instance_id)
            can_act = await self.access.can_act()
        except NotFoundError:
            context: dict[str, Any] = {"instance_id": instance_id, "error": error}
            return self.render(request, "not_found.html", context, 404)
        except actions.ERRORS as failure:
            return self.problem(request, actions.refusal("load the workflow", failure))
        context = {
            "workflow": views.workflow_view(found.snapshot, self.clock(), found.pending, found.claim),
            "can_act": can_act,
            "notice": notice,
            "error": error,
            "refresh_url": f"/workflow?{urlencode({'id': instance_id})}",
            "json_url": f"/workflow/snapshot.json?{urlencode({'id': instance_id})}",
        }
        return self.render(request, "workflow.html", context, status)

    async def snapshot_json(self, request: Request) -> Response:
        try:
            snapshot = await self.client.load_snapshot(request.query_params.get("id", ""))
        except actions.ERRORS as error:
            refusal = actions.refusal("load the snapshot", error)
            return Response(refusal.message, refusal.status, media_type="text/plain")
        return Response(json_format.MessageToJson(snapshot, indent=2), media_type="application/json")

    async def dispatch(self, request: Request) -> Response:
        try:
            summaries, complete = await reads.scan(
                self.client, [enums.WORKFLOW_STATE_IN_PROGRESS], self.options.scan_limit
            )
        except actions.ERRORS as error:
            return self.problem(request, actions.refusal("read dispatch", error))
        context = {
            "dispatch": views.dispatch_view(summaries, self.clock(), complete=complete),
            "refresh_url": "/dispatch",
        }
        return self.render(request, "dispatch.html", context)

    # --- actions ----------------------------------------------------------------------------------------------

    async def act(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in actions.PERFORM:
            return self.problem(request, actions.Refusal(404, f"no action {action!r}"))
        form = await _form(request)
        if form is None:
            return self.problem(request, actions.Refusal(400, "expected a form (application/x-www-form-urlencoded)"))
        own_origin = f"{request.url.scheme}://{request.url.netloc}"
        if not self.guard.allows(request.cookies.get(COOKIE), form.get(FIELD, ""), request.headers, own_origin):
            message = "this form did not come from this console, or it has expired: reload the page and try again"
            return self.problem(request, actions.Refusal(403, message))
        instance_id = form.get("id", "")
        try:
            can_act = await self.access.can_act()
        except actions.ERRORS as error:
            return self.problem(request, actions.refusal(action, error))
        if not can_act:
            return self.problem(request, actions.Refusal(403, f"cannot {action}: this console is {self.access.role}"))
        if form.get("confirmed") != "1":
            context = {"action": action, "instance_id": instance_id, "fields": actions.form_fields(action, form)}
            return self.render(request, "confirm.html", context)
        try:
            outcome = await actions.PERFORM[action](self.client, instance_id, form)
        except actions.ERRORS as error:
            refusal = actions.refusal(action, error)
            if refusal.permission_denied:
                self.access.denied()
            return await self.workflow_page(request, instance_id, error=refusal.message, status=refusal.status)
        target = urlencode({"id": instance_id, "done": action, "outcome": outcome})
        return RedirectResponse(f"/workflow?{target}", status_code=303)


async def _form(request: Request) -> dict[str, str] | None:
    """The fields of a URL-encoded form (the last value of each), or None for another body."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[-1] for name, values in fields.items()}


def create_app(
    options: ConsoleOptions,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_ready: Callable[[Access], None] | None = None,
) -> Starlette:
    """The console's ASGI application; `on_ready` runs once the client is open (and the role probed)."""
    console = Console(options, clock)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with console.lifespan(app):
            if on_ready is not None:
                on_ready(console.access)
            yield

    return Starlette(
        routes=console.routes(),
        middleware=[
            Middleware(_SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=list(options.allowed_hosts)),
        ],
        lifespan=lifespan,
        max_body_size=MAX_FORM_BYTES,
    )
