"""Product-Live end to end on real RabbitMQ against the simulator: `run-job` and
`invite-partners`, with JSON and with XML data (structured and binary mode), each request
compared with the vendor's documents in the simulator's ledger; hostile XML answered `invalid`
with the worker unharmed; the account's rate limit holding while other command types go on."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contracts.jsonxml import xml_to_json
from tests.conftest import System, fast_settings, running_system
from tests.unit.test_jsonxml import LAUGHS, XXE
from workers.simulators import Fault, RunningSimulators
from workers.topology import DEAD_LETTER_QUEUE

ECHO_JOB = "65819ba43ad5b963658ab35d"
INVITE_JOB = "6601c0ffee0000000000000a"
NS = "http://www.w3.org/2005/xpath-functions"

INVITE_XML = f"""<?xml version="1.1" encoding="UTF-8"?>
<map xmlns="{NS}">
<array key="operations">
<map>
<string key="key">a</string>
<string key="to_account_name">Supplier A</string>
<string key="to_user_email">contact@supplier-a.com</string>
</map>
<map>
<string key="key">b</string>
<string key="to_account_name">Supplier B</string>
<string key="to_user_email">contact-at-supplier-b</string>
<string key="from_user_id">9224</string>
</map>
</array>
<string key="result_format">xml</string>
</map>"""


def structured(command_type: str, command_id: str, data: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": command_id,
            "source": "urn:example:test",
            "type": f"flowgate.{command_type}",
            "datacontenttype": "application/xml",
            "data": data,
        }
    ).encode()


def binary_headers(command_type: str, command_id: str) -> dict[str, Any]:
    return {
        "ce-specversion": "1.0",
        "ce-id": command_id,
        "ce-source": "urn:example:test",
        "ce-type": f"flowgate.{command_type}",
    }


def created(system: System) -> list[Any]:
    return system.sims.ledger.entries("productlive.job_create")


async def test_run_job_json_end_to_end(system: System) -> None:
    command_id = await system.publish(
        "run-job", {"job_id": ECHO_JOB, "input": {"someKey": "some data"}}
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.run-job.succeeded"
    data = terminal["data"]
    assert data["status"] == "COMPLETED"
    assert data["result"]["output"]["input"] == {"someKey": "some data"}
    assert data["result"]["files"][0]["url"].startswith("https://api.product-live.com/")
    kinds = system.events.kinds(command_id)
    assert kinds[0] == "accepted" and kinds[-1] == "succeeded"
    execution_id = data["vendor_ref"]["job_execution_id"]
    [create] = created(system)
    assert (create.method, create.path) == ("POST", "/v1/data_factory/job_executions")
    assert create.headers["x-api-key"] == "productlive-api-key"
    assert create.json == {"jobId": ECHO_JOB, "input": {"someKey": "some data"}}
    reads = system.sims.ledger.entries("productlive.job_read")
    assert reads and {(e.method, e.path) for e in reads} == {
        ("GET", f"/v1/data_factory/job_executions/{execution_id}")
    }


async def test_invite_partners_xml_in_xml_out_structured_mode(system: System) -> None:
    command_id = str(uuid.uuid4())
    await system.publish_raw(
        "invite-partners", structured("invite-partners", command_id, INVITE_XML)
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.invite-partners.succeeded"
    [create] = created(system)
    # The XML became the same model as JSON would, sent in the task's own shape.
    assert create.json == {
        "jobId": INVITE_JOB,
        "input": {
            "operations": [
                {
                    "key": "a",
                    "element": {
                        "toAccountName": "Supplier A",
                        "toUserEmail": "contact@supplier-a.com",
                    },
                },
                {
                    "key": "b",
                    "element": {
                        "toAccountName": "Supplier B",
                        "toUserEmail": "contact-at-supplier-b",
                        "fromUserId": "9224",
                    },
                },
            ]
        },
    }
    result = xml_to_json(terminal["data"]["result"]["xml"], max_bytes=1 << 20, max_depth=32)
    assert result["failed_keys"] == ["b"]
    [ok, bad] = result["results"]
    assert ok["key"] == "a" and ok["response"]["object"] == "partner_invitation"
    assert ok["response"]["status"] == "PENDING"
    assert bad == {
        "key": "b",
        "error": {"code": "INVALID_EMAIL", "message": "toUserEmail is not a valid email address"},
    }


async def test_invite_partners_json_and_run_job_xml_binary_mode(system: System) -> None:
    invite_id = await system.publish(
        "invite-partners",
        {
            "operations": [
                {"key": "k1", "to_account_name": "One", "to_user_email": "one@example.com"},
                {"key": "k2", "to_account_name": "Two", "to_user_email": "two@example.com"},
            ]
        },
    )
    job_id = str(uuid.uuid4())
    xml = (
        f'<map xmlns="{NS}"><string key="job_id">{ECHO_JOB}</string>'
        f'<map key="input"><number key="n">7</number><boolean key="dry">true</boolean></map></map>'
    )
    await system.publish_raw(
        "run-job",
        xml.encode(),
        content_type="application/xml",
        headers=binary_headers("run-job", job_id),
    )
    invited = (await system.events.terminal(invite_id))["data"]
    assert invited["result"]["failed_keys"] == []
    assert [r["key"] for r in invited["result"]["results"]] == ["k1", "k2"]
    ran = (await system.events.terminal(job_id))["data"]
    assert ran["result"]["output"]["input"] == {"n": 7, "dry": True}
    assert {"jobId": ECHO_JOB, "input": {"n": 7, "dry": True}} in [e.json for e in created(system)]


async def test_hostile_xml_is_invalid_and_the_worker_goes_on(system: System) -> None:
    xxe_id, laughs_id, deep_id = (str(uuid.uuid4()) for _ in range(3))
    deep = f'<map xmlns="{NS}">' + '<map key="m">' * 200 + "</map>" * 200 + "</map>"
    await system.publish_raw("run-job", structured("run-job", xxe_id, XXE))
    await system.publish_raw(
        "invite-partners",
        LAUGHS.encode(),
        content_type="application/xml",
        headers=binary_headers("invite-partners", laughs_id),
    )
    await system.publish_raw("run-job", structured("run-job", deep_id, deep))
    for command_id, says in ((xxe_id, "no DTD"), (laughs_id, "no DTD"), (deep_id, "deeper")):
        terminal = await system.events.terminal(command_id)
        assert terminal["data"]["error"]["kind"] == "invalid", terminal
        assert says in terminal["data"]["error"]["message"]
    assert created(system) == []
    # unharmed: the next command is served as usual
    ok = await system.publish("run-job", {"job_id": ECHO_JOB})
    assert (await system.events.terminal(ok))["type"] == "flowgate.run-job.succeeded"
    assert await system.broker.queue_length(DEAD_LETTER_QUEUE) == 3


async def test_a_duplicate_key_is_invalid_before_any_call(system: System) -> None:
    operation = {"key": "a", "to_account_name": "A", "to_user_email": "a@a.com"}
    command_id = await system.publish("invite-partners", {"operations": [operation, operation]})
    error = (await system.events.terminal(command_id))["data"]["error"]
    assert error["kind"] == "invalid" and "used twice" in error["message"]
    assert created(system) == []


@pytest.fixture
async def limited(amqp_url: str, sims: RunningSimulators) -> AsyncIterator[System]:
    """A Product-Live account limited to 3 calls per 2 s (flowgate's setting and the
    simulator's own), a 429 fault on the first status read, shared limiter in Redis."""
    sims.sims.vendors["productlive"].config.rate_limit = 3  # type: ignore[attr-defined]
    sims.sims.vendors["productlive"].config.rate_window = 2.0  # type: ignore[attr-defined]
    settings = fast_settings(
        amqp_url,
        sims.base_url,
        store="redis",
        connections={"productlive": {"default": {"rate_limit": {"requests": 3, "window": 2.0}}}},
    )
    async with running_system(settings, sims.sims) as running:
        yield running


async def test_the_account_limit_holds_and_other_types_do_not_wait(limited: System) -> None:
    system = limited
    system.sims.inject(Fault(route="productlive.job_read", status=429, retry_after=1, times=1))
    started = time.monotonic()
    ids = [
        await system.publish("run-job", {"job_id": ECHO_JOB, "input": {"i": i}}) for i in range(8)
    ]
    other = await system.publish(
        "add-paylink", {"business_id": "PR", "order_id": "O1", "payment_link": "x"}
    )
    answered = (await system.events.terminal(other))["type"]
    other_took = time.monotonic() - started
    for command_id in ids:
        terminal = await system.events.terminal(command_id, timeout=60)
        assert terminal["type"] == "flowgate.run-job.succeeded"
    all_took = time.monotonic() - started
    assert answered == "flowgate.add-paylink.succeeded"
    assert other_took < all_took / 3
    # The ledger is the judge: no 2-second window saw more than 3 calls to the account,
    # the injected 429 included (flowgate paused the account for its Retry-After).
    calls = sorted(e.at for e in system.sims.ledger.entries() if e.route.startswith("productlive."))
    assert len(calls) >= 16
    for i in range(len(calls) - 3):
        assert calls[i + 3] - calls[i] >= 2.0, calls
    assert [e.status for e in system.sims.ledger.entries()].count(429) == 1
    assert await system.broker.queue_length(DEAD_LETTER_QUEUE) == 0
