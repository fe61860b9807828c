"""The operator page over HTTP, on real RabbitMQ and Redis against the simulators: nothing
without the token, the session cookie's attributes, what a cross-site request cannot do, a
run listed then cancelled from the page and shown ended, and a dead letter listed then
replayed from the page under the same rules as `flowgate dlq replay`.

The page is served as `flowgate worker` serves it (`OperatorPage` on a socket, dead letters
and cancels on a connection of their own); its browser side is tested in
tests/e2e/test_operator_browser.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import System
from tests.waiting import poll_until
from workers.app import make_broker
from workers.dead_letters import replay_id
from workers.operator import OperatorPage, opener
from workers.simulators import Fault
from workers.topology import DEAD_LETTER_QUEUE

pytestmark = pytest.mark.integration

TOKEN = "operator-token-for-tests-0123456789"


@pytest.fixture
async def page(system: System) -> AsyncIterator[str]:
    """The page of an in-process worker and poller; its base URL."""
    operator = OperatorPage(
        token=TOKEN,
        store=system.app.store,
        registry=system.app.registry,
        open_broker=opener(lambda: make_broker(system.settings)),
        user="guest",
    )
    async with operator.serving("127.0.0.1", 0) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def signed_in(page: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=page) as client:
        answer = await client.post("/login", data={"token": TOKEN})
        assert answer.status_code == 303
        yield client


async def _get(client: httpx.AsyncClient, path: str) -> Any:
    answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_nothing_is_shown_or_done_without_the_token(page: str) -> None:
    async with httpx.AsyncClient(base_url=page) as client:
        first = await client.get("/")
        assert first.status_code == 200
        assert 'name="token"' in first.text and "Runs in flight" not in first.text
        for path in ("/api/runs", "/api/recent", "/api/dead-letters"):
            assert (await client.get(path)).status_code == 401, path
        for path in ("/api/replay", "/api/cancel"):
            answer = await client.post(path, json={"id": "x", "command_id": "x"})
            assert answer.status_code == 401, path
        wrong = await client.post("/login", data={"token": TOKEN[:-1]})
        assert wrong.status_code == 401
        assert "That is not the token" in wrong.text and "set-cookie" not in wrong.headers
        assert (await client.get("/api/runs")).status_code == 401
        bearer = await client.get("/api/runs", headers={"Authorization": "Bearer nope"})
        assert bearer.status_code == 401
        allowed = await client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200


async def test_signing_in_sets_a_strict_httponly_cookie_and_signing_out_ends_it(
    page: str,
) -> None:
    async with httpx.AsyncClient(base_url=page) as client:
        answer = await client.post("/login", data={"token": TOKEN})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert TOKEN.lower() not in cookie, "the cookie is a session, not the token"
        index = await client.get("/")
        assert "Runs in flight" in index.text
        csp = index.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert index.headers["x-content-type-options"] == "nosniff"
        script = await client.get("/app.js")
        assert script.status_code == 200 and "textContent" in script.text
        assert "innerHTML" not in script.text, "data is only ever put in as text"
        await client.post("/logout")
        assert (await client.get("/api/runs")).status_code == 401


async def test_a_post_that_a_cross_site_form_could_send_is_refused(
    signed_in: httpx.AsyncClient, system: System
) -> None:
    """A form on another site can POST urlencoded or text/plain, never application/json."""
    for content_type in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data"):
        answer = await signed_in.post(
            "/api/cancel",
            content=b'{"command_id": "x"}',
            headers={"Content-Type": content_type},
        )
        assert answer.status_code == 415, content_type
    assert (await signed_in.post("/api/cancel", json={})).status_code == 400
    assert (await signed_in.post("/api/replay", json={"id": " "})).status_code == 400


async def test_a_run_is_listed_cancelled_from_the_page_and_shown_ended(
    signed_in: httpx.AsyncClient, system: System
) -> None:
    system.sims.config.pbsm.run_seconds = 60  # still going when the cancel comes
    target = await system.publish("trigger-batch", {"batch": "OPERATOR1"})

    async def listed() -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = (await _get(signed_in, "/api/runs"))["runs"]
        return [r for r in runs if r["command_id"] == target]

    [run] = await poll_until(listed, bool, timeout=20)
    assert (run["command_type"], run["connection"], run["can_cancel"]) == (
        "trigger-batch",
        "default",
        True,
    )
    assert run["vendor_ref"]["batch_run_id"]

    sent = await signed_in.post("/api/cancel", json={"command_id": target})
    assert sent.status_code == 202, sent.text
    cancel_id = sent.json()["cancel_id"]
    answered = await system.events.terminal(cancel_id)
    assert answered["type"] == "flowgate.cancel-run.succeeded"
    ended = await system.events.terminal(target)
    assert ended["type"] == "flowgate.trigger-batch.cancelled"

    async def recent() -> list[dict[str, Any]]:
        ended: list[dict[str, Any]] = (await _get(signed_in, "/api/recent"))["ended"]
        return ended

    shown = await poll_until(recent, lambda e: any(x["command_id"] == target for x in e))
    mine = {e["command_id"]: e for e in shown}
    assert mine[target]["kind"] == "cancelled"
    assert mine[target]["command_type"] == "trigger-batch"
    assert mine[cancel_id]["kind"] == "succeeded"
    assert await listed() == []


async def test_runs_of_vendors_that_cannot_stop_them_offer_no_cancel(
    signed_in: httpx.AsyncClient, system: System
) -> None:
    system.sims.config.robusta.run_seconds = 60
    target = await system.publish("start-process", {"process_name": "OperatorProc"})

    async def listed() -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = (await _get(signed_in, "/api/runs"))["runs"]
        return [r for r in runs if r["command_id"] == target]

    [run] = await poll_until(listed, bool, timeout=20)
    assert run["can_cancel"] is False


async def test_a_dead_letter_is_listed_and_replayed_from_the_page(
    signed_in: httpx.AsyncClient, system: System
) -> None:
    system.sims.inject(Fault(route="tmf622.patch", status=400, times=1))
    old = await system.publish(
        "add-paylink",
        {"business_id": "PR", "order_id": "O-OP", "payment_link": "https://p/op"},
    )
    failed = await system.events.terminal(old)
    assert failed["data"]["error"]["kind"] == "rejected"
    await poll_until(lambda: system.broker.queue_length(DEAD_LETTER_QUEUE), lambda n: n == 1)

    letters = (await _get(signed_in, "/api/dead-letters"))["letters"]
    [letter] = [x for x in letters if x["command_id"] == old]
    assert (letter["position"], letter["command_type"], letter["kind"]) == (
        1,
        "add-paylink",
        "rejected",
    )
    assert letter["replayable"] is True and letter["reason"]
    # Looking put it back, as it was.
    assert await system.broker.queue_length(DEAD_LETTER_QUEUE) == 1

    answer = await signed_in.post("/api/replay", json={"id": old})
    assert answer.status_code == 200, answer.text
    assert answer.json()["replayed"] is True
    assert replay_id(old) in answer.json()["message"]
    replayed = await system.events.terminal(replay_id(old))
    assert replayed["type"] == "flowgate.add-paylink.succeeded"
    assert replayed["replayof"] == old
    assert (await _get(signed_in, "/api/dead-letters"))["letters"] == []

    again = await signed_in.post("/api/replay", json={"id": old})
    assert again.status_code == 409
    assert again.json()["replayed"] is False
    assert "no dead letter with command id" in again.json()["message"]


async def test_an_invalid_letter_is_listed_but_not_offered_for_replay(
    signed_in: httpx.AsyncClient, system: System
) -> None:
    await system.publish_raw("trigger-batch", b"{not json")
    await poll_until(lambda: system.broker.queue_length(DEAD_LETTER_QUEUE), lambda n: n == 1)
    [letter] = (await _get(signed_in, "/api/dead-letters"))["letters"]
    assert letter["kind"] == "invalid"
    assert letter["replayable"] is False and letter["why_not"]
