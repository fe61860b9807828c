"""The operator page in a real headless Chromium (Debian's `chromium`, driven by Playwright),
served by a real `flowgate worker` process beside a `flowgate poller`, on RabbitMQ and Redis
against the simulators: an operator signs in, sees a run the test started, sees it finish,
cancels another from the page, and replays a dead letter from the page, whose new run is seen
on `flowgate.events`.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from contracts import encode_command
from tests.chaos.procs import free_port
from tests.conftest import Events, collect_events
from tests.waiting import poll_until
from workers.broker import AmqpBroker, OutgoingMessage
from workers.commands import COMMANDS
from workers.dead_letters import replay_id
from workers.simulators import Fault, RunningSimulators
from workers.topology import COMMANDS_EXCHANGE, DEAD_LETTER_QUEUE, build_topology

pytestmark = pytest.mark.e2e

TOKEN = "browser-test-token-0123456789abcdef"
FLOWGATE = [sys.executable, "-m", "workers.cli"]
# Long enough for Chromium's steps under a loaded CI machine; each wait ends as soon as it holds.
SEEN = 30_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(
            "no chromium on PATH: scripts/install installs Debian's chromium package "
            "(apt-get install chromium)",
            pytrace=False,
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


class Flowgate:
    """A worker serving the operator page and a poller, as processes; an event collector."""

    def __init__(self, broker: AmqpBroker, events: Events, url: str) -> None:
        self.broker, self.events, self.url = broker, events, url

    async def publish(self, command_type: str, data: dict[str, object]) -> str:
        command_id = str(uuid.uuid4())
        body, content_type = encode_command(command_type, data, command_id=command_id)
        message = OutgoingMessage(body=body, content_type=content_type)
        await self.broker.publish(COMMANDS_EXCHANGE, command_type, message)
        return command_id


@pytest.fixture
async def flowgate(
    amqp_url: str, sims: RunningSimulators, tmp_path: Path
) -> AsyncIterator[Flowgate]:
    import asyncio

    port = free_port()
    env = dict(
        os.environ,
        FLOWGATE_AMQP_URL=amqp_url,
        FLOWGATE_IDEMPOTENCY__KEY_PREFIX=f"flowgate-browser-{uuid.uuid4().hex[:8]}:",
        FLOWGATE_OPERATOR__PORT=str(port),
        FLOWGATE_OPERATOR__TOKEN=TOKEN,
        PYTHONUNBUFFERED="1",
    )
    for vendor in ("INFORMATICA", "ROBUSTA", "TMF622", "PBSM", "PRODUCTLIVE"):
        env[f"FLOWGATE_{vendor}__DEFAULT__BASE_URL"] = sims.base_url
        env[f"FLOWGATE_{vendor}__DEFAULT__POLL__FIRST_DELAY"] = "0.25"
        env[f"FLOWGATE_{vendor}__DEFAULT__POLL__MAX_DELAY"] = "0.5"
    broker = AmqpBroker(amqp_url)
    await broker.connect()
    await broker.declare(build_topology(COMMANDS))
    for queue in build_topology(COMMANDS).queues:
        await broker.purge(queue.name)
    events = await collect_events(broker)
    logs = {role: (tmp_path / f"{role}.log").open("wb") for role in ("worker", "poller")}
    envs = {
        "worker": env,
        "poller": {k: v for k, v in env.items() if not k.startswith("FLOWGATE_OPERATOR__")},
    }
    procs = [
        # Their logs in files, read when a step fails (pytest prints tmp_path's location).
        await asyncio.create_subprocess_exec(
            *FLOWGATE, role, env=envs[role], stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        for role, log in logs.items()
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:

            async def answer() -> int | None:
                try:
                    return (await http.get(url)).status_code
                except httpx.TransportError:
                    return None  # not listening yet

            await poll_until(answer, lambda status: status == 200, timeout=30, interval=0.1)
        yield Flowgate(broker, events, url)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            await proc.wait()
        for log in logs.values():
            log.close()
        await broker.close()


async def _signed_in(browser: Browser, url: str) -> Page:
    page = await browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before each action
    await page.goto(url)
    await page.fill("#token", "not the token")
    await page.click("button[type=submit]")
    await expect(page.locator("#failed")).to_be_visible()
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await expect(page.get_by_role("heading", name="Runs in flight")).to_be_visible()
    return page


async def test_an_operator_follows_cancels_and_replays_from_the_page(
    browser: Browser, flowgate: Flowgate, sims: RunningSimulators
) -> None:
    page = await _signed_in(browser, flowgate.url)
    sims.sims.config.pbsm.run_seconds = 600  # both runs go on until the test says
    finishing = await flowgate.publish("trigger-batch", {"batch": "BROWSER1"})
    cancelling = await flowgate.publish("trigger-batch", {"batch": "BROWSER2"})

    runs = page.locator("#runs tbody")
    for command_id in (finishing, cancelling):
        row = runs.locator(f'tr[data-command-id="{command_id}"]')
        await expect(row).to_be_visible(timeout=SEEN)
        await expect(row).to_contain_text("trigger-batch")

    # Cancelled from the page: PBSM's interrupt, then `cancelled` once the vendor says so.
    await runs.locator(f'tr[data-command-id="{cancelling}"] button[data-action=cancel]').click()
    await expect(page.locator("#notice")).to_contain_text(f"sent for {cancelling}")
    ended = page.locator("#recent tbody")
    await expect(ended.locator(f'tr[data-command-id="{cancelling}"]')).to_have_attribute(
        "data-kind", "cancelled", timeout=SEEN
    )
    assert (await flowgate.events.terminal(cancelling))["type"].endswith(".cancelled")

    # Finished by the vendor: it leaves the runs in flight and shows ended.
    sims.sims.config.pbsm.run_seconds = 0
    await expect(ended.locator(f'tr[data-command-id="{finishing}"]')).to_have_attribute(
        "data-kind", "succeeded", timeout=SEEN
    )
    await expect(runs.locator(f'tr[data-command-id="{finishing}"]')).to_have_count(0)

    # A dead letter, listed with its reason, replayed from the page.
    sims.sims.inject(Fault(route="tmf622.patch", status=400, times=1))
    dead = await flowgate.publish(
        "add-paylink",
        {"business_id": "PR", "order_id": "O-BROWSER", "payment_link": "https://p/b"},
    )
    assert (await flowgate.events.terminal(dead))["data"]["error"]["kind"] == "rejected"
    await poll_until(lambda: flowgate.broker.queue_length(DEAD_LETTER_QUEUE), lambda n: n == 1)
    await page.click("#letters-refresh")
    letter = page.locator(f'#letters tbody tr[data-command-id="{dead}"]')
    await expect(letter).to_contain_text("rejected", timeout=SEEN)
    await expect(letter).to_contain_text("HTTP 400")
    await letter.locator("button[data-action=replay]").click()
    await expect(page.locator("#notice")).to_contain_text(f"replayed {dead}", timeout=SEEN)
    replayed = await flowgate.events.terminal(replay_id(dead))
    assert replayed["type"] == "flowgate.add-paylink.succeeded"
    assert replayed["replayof"] == dead
    await expect(page.locator("#letters-empty")).to_be_visible(timeout=SEEN)
    await page.close()
