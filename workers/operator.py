"""The operator page: the runs in flight, the commands that recently ended, the dead letters
with their reasons, and the two things an operator does about them (replay a dead letter,
cancel a run), in a browser.

A worker or poller serves it beside `/metrics` when `operator.port` is set, on its own
listener: bound to 127.0.0.1 unless `operator.host` says otherwise (the health port is often
open to a cluster's probes; this one should not be), and behind `operator.token`. Everything it
shows comes from what every process shares (the idempotency store's runs and recent outcomes,
the dead-letter queue), so any one process's page shows the whole system.

    GET  /                   the page once signed in; else the sign-in form
    POST /login              form field `token`: a session cookie, then back to /
    POST /logout
    GET  /api/runs           the runs in flight, as `flowgate runs list --json` prints them,
                             each with `can_cancel`
    GET  /api/recent         the commands that ended last, newest first
    GET  /api/dead-letters   every dead letter (one pass over the queue, as `flowgate dlq list`)
    POST /api/replay         {"id": "<command id or message id>"}: `flowgate dlq replay ID`
    POST /api/cancel         {"command_id": "<id>"}: sends a `cancel-run` command for it

The API takes the session cookie or `Authorization: Bearer <token>` (curl, scripts). The cookie
is HttpOnly and SameSite=Strict, and a POST must say `Content-Type: application/json`, which
no form of another site can send, so no other page can act through an operator's browser. The
page itself is static (`operator_assets/`): its script fills it from the API, only ever as
text, under a Content-Security-Policy that allows nothing but this origin.

Replays and cancels go out as the AMQP user of `amqp_url`, as `flowgate dlq replay` and
`flowgate send` would (list it in a connection's `allowed_publishers` to act on its commands),
and each is logged with the ids involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from contracts.envelope import encode_command
from workers import _asgi, dlq
from workers.broker.base import Broker, OutgoingMessage, PublishNotConfirmed, TopologyError
from workers.dead_letters import DeadLetter, NotReplayable
from workers.idempotency import IdempotencyStore, StoreUnavailable
from workers.registry import Registry
from workers.runs import as_json
from workers.topology import COMMANDS_EXCHANGE

__all__ = ["OperatorPage", "opener"]

log = logging.getLogger("flowgate.operator")

BrokerOpener = Callable[[], AbstractAsyncContextManager[Broker]]

_COOKIE = "flowgate_operator"
_SESSION_SECONDS = 12 * 3600.0
_MAX_SESSIONS = 1000
_MAX_BODY = 4096
_RECENT_SHOWN = 100
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
_ASSETS = {
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}


def opener(make: Callable[[], Broker]) -> BrokerOpener:
    """Each action on its own connection: a dead-letter pass holds letters unacked, and a
    channel error there must not touch the connection the process consumes on."""

    @contextlib.asynccontextmanager
    async def open_broker() -> AsyncIterator[Broker]:
        broker = make()
        await broker.connect()
        try:
            yield broker
        finally:
            await broker.close()

    return open_broker


class OperatorPage:
    """The page and its API as an ASGI app (`app`); `serving` runs it on a socket."""

    def __init__(
        self,
        *,
        token: str,
        store: IdempotencyStore,
        registry: Registry,
        open_broker: BrokerOpener,
        user: str | None,
    ) -> None:
        self._token = token.encode()
        self._store = store
        self._registry = registry
        self._open_broker = open_broker
        self._user = user
        self._sessions: dict[str, float] = {}
        # One dead-letter pass at a time: two at once would each see only the letters the
        # other is not holding.
        self._letters = asyncio.Lock()
        self.app = Starlette(
            routes=[
                Route("/", self._index, methods=["GET"]),
                Route("/login", self._login, methods=["POST"]),
                Route("/logout", self._logout, methods=["POST"]),
                Route("/app.js", self._asset, methods=["GET"]),
                Route("/app.css", self._asset, methods=["GET"]),
                Route("/api/runs", self._api(self._runs), methods=["GET"]),
                Route("/api/recent", self._api(self._recent), methods=["GET"]),
                Route("/api/dead-letters", self._api(self._dead_letters), methods=["GET"]),
                Route("/api/replay", self._api(self._replay), methods=["POST"]),
                Route("/api/cancel", self._api(self._cancel), methods=["POST"]),
            ]
        )

    def serving(self, host: str, port: int) -> AbstractAsyncContextManager[int]:
        """Serve the page for the duration of the block; yields the bound port."""
        return _asgi.serving(self.app, host, port)

    # ------------------------------------------------------------------- sessions

    def _signed_in(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            return hmac.compare_digest(auth[7:].strip().encode(), self._token)
        session = request.cookies.get(_COOKIE)
        if not session:
            return False
        expires = self._sessions.get(session)
        if expires is None or expires < time.monotonic():
            self._sessions.pop(session, None)
            return False
        return True

    def _new_session(self) -> str:
        now = time.monotonic()
        for session, expires in list(self._sessions.items()):
            if expires < now:
                del self._sessions[session]
        while len(self._sessions) >= _MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]  # the oldest sign-in goes
        session = secrets.token_urlsafe(32)
        self._sessions[session] = now + _SESSION_SECONDS
        return session

    async def _index(self, request: Request) -> Response:
        page = "index.html" if self._signed_in(request) else "login.html"
        return _page(page)

    async def _login(self, request: Request) -> Response:
        body = await _body(request)
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0].strip()
        if not hmac.compare_digest(given.encode(), self._token):
            log.warning("operator page: a sign-in with a wrong token from %s", _peer(request))
            return _page("login.html", status=401, failed=True)
        response = RedirectResponse("/", status_code=303, headers=_HEADERS)
        response.set_cookie(
            _COOKIE,
            self._new_session(),
            max_age=int(_SESSION_SECONDS),
            httponly=True,
            samesite="strict",
            path="/",
        )
        log.info("operator page: signed in from %s", _peer(request))
        return response

    async def _logout(self, request: Request) -> Response:
        session = request.cookies.get(_COOKIE)
        if session:
            self._sessions.pop(session, None)
        response = RedirectResponse("/", status_code=303, headers=_HEADERS)
        response.delete_cookie(_COOKIE, path="/")
        return response

    async def _asset(self, request: Request) -> Response:
        name, media_type = _ASSETS[request.url.path]
        return Response(_asset_text(name), media_type=media_type, headers=_HEADERS)

    # ------------------------------------------------------------------------ API

    def _api(
        self, action: Callable[[Request], Awaitable[tuple[int, Any]]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not self._signed_in(request):
                return _json(401, {"error": "sign in first (or send Authorization: Bearer)"})
            if request.method == "POST":
                media = request.headers.get("content-type", "").split(";")[0].strip()
                if media != "application/json":
                    return _json(415, {"error": "send the request as application/json"})
            try:
                status, payload = await action(request)
            except StoreUnavailable as exc:
                return _json(503, {"error": f"{exc}; check idempotency.redis_url"})
            except (OSError, ConnectionError, PublishNotConfirmed, TimeoutError) as exc:
                # The type only: a message may carry a URL with credentials in it.
                log.warning("operator page: RabbitMQ unavailable (%s)", type(exc).__name__)
                return _json(503, {"error": f"RabbitMQ unavailable ({type(exc).__name__})"})
            return _json(status, payload)

        return endpoint

    async def _runs(self, request: Request) -> tuple[int, Any]:
        now = time.time()
        runs = []
        for view in await self._store.runs():
            run = as_json(view, now)
            run["can_cancel"] = self._can_cancel(view.command_type, view.connection)
            runs.append(run)
        return 200, {"runs": runs, "now": now}

    def _can_cancel(self, command_type: str | None, connection: str | None) -> bool:
        if command_type is None or connection is None:
            return False
        try:
            return self._registry.handler(command_type, connection).can_cancel
        except (KeyError, ValueError):
            return False  # a type or connection this process does not know

    async def _recent(self, request: Request) -> tuple[int, Any]:
        ended = await self._store.recent(_RECENT_SHOWN)
        return 200, {"ended": [e.to_json() for e in ended]}

    async def _dead_letters(self, request: Request) -> tuple[int, Any]:
        try:
            async with self._letters, self._open_broker() as broker:
                taken = await dlq.letters(broker)
        except TopologyError:
            return 503, {"error": "no dead-letter queue on this vhost; run `flowgate declare`"}
        return 200, {"letters": [_letter_json(position, letter) for position, letter in taken]}

    async def _replay(self, request: Request) -> tuple[int, Any]:
        wanted = _field(await _json_body(request), "id")
        if wanted is None:
            return 400, {"error": 'say which letter: {"id": "<command id or message id>"}'}
        async with self._letters, self._open_broker() as broker:
            replayed, said = await dlq.replay(broker, [wanted], user=self._user)
        log.info("operator page: replay of dead letter %s: %s", wanted, said.replace("\n", "; "))
        return (200 if replayed else 409), {"replayed": replayed, "message": said}

    async def _cancel(self, request: Request) -> tuple[int, Any]:
        target = _field(await _json_body(request), "command_id")
        if target is None:
            return 400, {"error": 'say which run: {"command_id": "<id>"}'}
        cancel_id = str(uuid.uuid4())
        body, content_type = encode_command(
            "cancel-run", {"command_id": target}, command_id=cancel_id, source=_SOURCE
        )
        message = OutgoingMessage(
            body=body, content_type=content_type, message_id=cancel_id, user_id=self._user
        )
        async with self._open_broker() as broker:
            await broker.publish(COMMANDS_EXCHANGE, "cancel-run", message)
        log.info("operator page: cancel-run %s sent for command %s", cancel_id, target)
        return 202, {
            "cancel_id": cancel_id,
            "message": f"cancel-run {cancel_id} sent for {target}; its answer shows under "
            "Recently ended",
        }


_SOURCE = "urn:flowgate:operator"


def _letter_json(position: int, letter: DeadLetter) -> dict[str, Any]:
    why_not = None
    try:
        letter.replay()
    except NotReplayable as exc:
        why_not = str(exc)
    if why_not is None and letter.error_kind == "invalid":
        why_not = "refused as invalid: it would be refused again (`flowgate dlq replay --force`)"
    return {
        "position": position,
        "command_id": letter.command_id,
        "message_id": letter.message_id,
        "command_type": letter.command_type,
        "kind": letter.error_kind,
        "attempts": letter.attempts,
        "dead_at": letter.dead_at,
        "queue": letter.source_queue,
        "reason": " ".join(letter.reason.split()),
        "replayable": why_not is None,
        "why_not": why_not,
    }


async def _body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            break
    return body[:_MAX_BODY]


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await _body(request))
    except ValueError:
        return None


def _field(payload: Any, name: str) -> str | None:
    value = payload.get(name) if isinstance(payload, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _json(status: int, payload: Any) -> Response:
    return JSONResponse(payload, status_code=status, headers=_HEADERS)


def _asset_text(name: str) -> str:
    return resources.files("workers").joinpath("operator_assets", name).read_text("utf-8")


def _page(name: str, *, status: int = 200, failed: bool = False) -> Response:
    text = _asset_text(name)
    if failed:
        text = text.replace('<p id="failed" hidden>', '<p id="failed">')
    return Response(text, status_code=status, media_type="text/html", headers=_HEADERS)


def _peer(request: Request) -> str:
    return request.client.host if request.client is not None else "?"
