"""Each command end to end on RabbitMQ against the simulators, and the vendor request checked
against the seed field by field (URL, method, headers, body)."""

from __future__ import annotations

import base64
import json
import math
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from tests.conftest import System, fast_settings, running_system
from workers.simulators import Fault, RunningSimulators


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_run_partner_succeeds_with_the_seed_request(system: System) -> None:
    command_id = await system.publish(
        "run-partner",
        {
            "partner_name": 'My "Best" \\ Customer',
            "direction": "outbound",
            "input_parameters": {"InvoiceNumber": "INV-1"},
            "in_out_parameters": {"ShipmentNumber": "S-9"},
            "session_properties": {"Default buffer block size": "18MB"},
        },
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.run-partner.succeeded"
    assert terminal["_routing_key"] == "run-partner.succeeded"
    assert system.events.kinds(command_id)[0] == "accepted"
    data = terminal["data"]
    assert data["status"] == "Complete"
    assert set(data["vendor_ref"]) == {"event_id"}
    assert len(data["result"]["file_events"]) == 2

    [run] = system.sims.ledger.entries("informatica.run")
    assert (run.method, run.path) == ("POST", "/b2b-gw/api/v1/partner/run")
    assert run.headers["authorization"] == _basic("iics-user", "iics-password")
    assert run.headers["content-type"].startswith("application/json")
    assert '"partnerName":"My \\"Best\\" \\\\ Customer"' in run.body
    assert run.json == {
        "partnerName": 'My "Best" \\ Customer',
        "direction": "OUTBOUND",
        "mappingParameters": {
            "inputParameters": {"InvoiceNumber": "INV-1"},
            "inOutParameters": {"ShipmentNumber": "S-9"},
            "mctAdvSessionProperties": {"Default buffer block size": "18MB"},
        },
    }
    statuses = system.sims.ledger.entries("informatica.status")
    event_id = data["vendor_ref"]["event_id"]
    assert statuses[0].path == f"/b2b-gw/api/v3/event/status/{event_id}"
    assert all(s.method == "GET" for s in statuses)


async def test_run_partner_with_a_file_in_error_fails_naming_the_file(system: System) -> None:
    """Against the documented Event Status shape: the task event ends Complete, one of its
    file events ends in Error; the run is failed/vendor_failed, and the terminal event lists
    every file event with its status and file name, times as RFC 3339."""
    system.sims.set_outcome("informatica", "Files In Error", "Complete", file_status="Error")
    command_id = await system.publish(
        "run-partner", {"partner_name": "Files In Error", "direction": "INBOUND"}
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.run-partner.failed"
    data = terminal["data"]
    assert data["status"] == "Complete", "the task event's own status"
    assert data["error"]["kind"] == "vendor_failed"
    files = data["result"]["file_events"]
    assert [f["eventStatus"] for f in files] == ["Error", "Error"]
    for f in files:
        assert f"({f['fileName']}) ended in Error" in data["error"]["message"]
        assert f["eventCreationTimestamp"].endswith("Z") and "T" in f["eventCreationTimestamp"]
    assert data["result"]["task_event"]["eventCreationTimestamp"].endswith("Z")


async def test_start_process_succeeds_with_outputs(system: System) -> None:
    command_id = await system.publish(
        "start-process",
        {
            "process_name": "OneStepNotepadRunner",
            "values": {"username": "Username", "usersurname": "User Surname"},
            "worker": "7",
            "run_once": False,
            "run_immediately": False,
            "schedule": {
                # The seed's example says `FR`, which Quartz refuses: its day names are SUN-SAT.
                "quartz_cron": "0 6 6 ? * FRI",
                "start": "2020-11-16T16:56:00Z",
                "end": "2020-11-18T16:55:00Z",
                "retry_count": 1,
            },
        },
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.start-process.succeeded"
    data = terminal["data"]
    assert data["status"] == "SUCCEEDED"
    assert data["result"]["x"] == "Username User Surname"
    [start] = system.sims.ledger.entries("robusta.start")
    assert (start.method, start.path) == ("POST", "/scheduler/connector-API/process/start")
    assert start.headers["authorization"] == _basic("robusta-user", "robusta-password")
    assert start.json == {
        "values": {"username": "Username", "usersurname": "User Surname"},
        "name": "OneStepNotepadRunner",
        "worker": "7",
        "runOnce": "N",
        "runImmediately": "N",
        "quartzDef": "0 6 6 ? * FRI",
        "startDate": "2020-11-16 16:56:00",
        "endDate": "2020-11-18 16:55:00",
        "retryCount": "1",
    }
    spid = data["vendor_ref"]["robusta_spid"]
    status = system.sims.ledger.entries("robusta.status")[0]
    assert (status.method, status.path) == (
        "GET",
        f"/scheduler/connector-api/process/status/{spid}",
    )


async def test_add_paylink_succeeds_synchronously(system: System) -> None:
    command_id = await system.publish(
        "add-paylink",
        {
            "business_id": "PR",
            "order_id": "801dm00000Km9aVAAR",
            "payment_link": "https://pay.example/l/1",
            "external_id": "00163913",
            "billing_account_id": "1234567-123445",
        },
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.add-paylink.succeeded"
    assert system.events.kinds(command_id) == ["succeeded"]
    assert terminal["data"]["result"]["description"]
    [patch] = system.sims.ledger.entries("tmf622.patch")
    assert (patch.method, patch.path) == (
        "PATCH",
        "/b2bsoft-ux/v1/PR/productOrder/801dm00000Km9aVAAR",
    )
    assert patch.headers["client_id"] == "b2bsoft-client"
    assert patch.headers["client_secret"] == "b2bsoft-secret"
    assert patch.headers["x-correlation-id"] == command_id
    assert patch.json == {
        "externalId": "00163913",
        "channel": [{"id": "sourceSystem", "name": "B2BSoft"}],
        "billingAccount": {"id": "1234567-123445", "name": "billingAccountNumber"},
        "productOrderItem": [
            {
                "id": "",
                "action": "add",
                "payment": [{"id": "https://pay.example/l/1", "name": "PayLink"}],
            }
        ],
    }


async def test_trigger_batch_succeeds_with_oauth_and_ofs_headers(system: System) -> None:
    command_id = await system.publish(
        "trigger-batch", {"batch": "B2001", "params": {"$FICMISDATE$": "2026-11-21"}}
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.trigger-batch.succeeded"
    assert system.events.kinds(command_id)[0] == "accepted"
    data = terminal["data"]
    assert data["status"] == "SUCCESSFUL"
    assert data["vendor_ref"]["batch_run_id"].startswith("B2001_")
    [token] = system.sims.ledger.entries("pbsm.token")
    assert (token.method, token.path) == ("POST", "/oauth2/v1/token")
    assert token.headers["authorization"] == _basic("pbsm-client", "pbsm-client-secret")
    assert token.headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = parse_qs(token.body)
    assert form == {
        "grant_type": ["password"],
        "scope": ["urn:opc:idm:__myscopes__ offline_access"],
        "username": ["pbsm-user"],
        "password": ["pbsm-password"],
    }
    [trigger] = system.sims.ledger.entries("pbsm.trigger")
    assert (trigger.method, trigger.path) == (
        "POST",
        "/SchedulerService/rest-api/v1/external/trigger",
    )
    for header, value in {
        "ofs_tenant_id": "TENANT1",
        "ofs_service_id": "PBSMCS",
        "ofs_workspace_id": "WS001",
        "ofs_remote_user": "batchuser",
        "locale": "en-US",
    }.items():
        assert trigger.headers[header] == value
    assert trigger.headers["authorization"].startswith("Bearer ")
    assert trigger.json == {
        "batchName": "B2001",
        "batchType": "rest",
        "dynamicParamList": {"batchParams": {"$FICMISDATE$": "2026-11-21"}},
    }
    status = system.sims.ledger.entries("pbsm.status")[0]
    assert status.json == {"batchRunId": data["vendor_ref"]["batch_run_id"]}


async def test_vendor_reported_failure_is_failed_vendor_failed(system: System) -> None:
    system.sims.set_outcome("informatica", "Bad Partner", "Error")
    command_id = await system.publish(
        "run-partner", {"partner_name": "Bad Partner", "direction": "INBOUND"}
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.run-partner.failed"
    error = terminal["data"]["error"]
    assert error["kind"] == "vendor_failed"
    assert "Error" in error["message"]
    assert terminal["data"]["status"] == "Error"


async def test_vendor_400_is_rejected_and_dead_lettered(system: System) -> None:
    system.sims.inject(Fault(route="tmf622.patch", status=400))
    command_id = await system.publish(
        "add-paylink", {"business_id": "PR", "order_id": "O1", "payment_link": "https://p/1"}
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.add-paylink.failed"
    assert terminal["data"]["error"]["kind"] == "rejected"
    assert terminal["data"]["error"]["http_status"] == 400
    dead = await system.broker.get("flowgate.dead-letters")
    assert dead is not None
    assert dead.headers["x-flowgate-error-kind"] == "rejected"
    assert json.loads(dead.body)["id"] == command_id
    await dead.ack()


async def test_503_twice_then_success_is_retried_once_answered(system: System) -> None:
    system.sims.inject(Fault(route="pbsm.trigger", status=503, times=2, retry_after=0.3))
    command_id = await system.publish("trigger-batch", {"batch": "B2002"})
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.trigger-batch.succeeded"
    assert [e.status for e in system.sims.ledger.entries("pbsm.trigger")] == [503, 503, 200]
    kinds = system.events.kinds(command_id)
    assert kinds.count("succeeded") == 1 and kinds.count("accepted") == 1


async def test_retries_exhausted_is_failed_exhausted(system: System) -> None:
    system.sims.inject(Fault(route="robusta.start", status=503))
    command_id = await system.publish("start-process", {"process_name": "P"})
    terminal = await system.events.terminal(command_id)
    assert terminal["data"]["error"]["kind"] == "exhausted"
    assert terminal["data"]["error"]["retriable"] is True
    assert len(system.sims.ledger.entries("robusta.start")) == 4  # max_attempts in the tests


async def test_token_expired_mid_run_is_refreshed_once(system: System) -> None:
    system.sims.set_outcome("pbsm", "SLOW", "SUCCESSFUL")
    command_id = await system.publish("trigger-batch", {"batch": "SLOW"})
    async with __import__("asyncio").timeout(10):
        while "accepted" not in system.events.kinds(command_id):
            await __import__("asyncio").sleep(0.05)
    system.sims.expire_tokens()
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.trigger-batch.succeeded"
    grants = [parse_qs(e.body)["grant_type"][0] for e in system.sims.ledger.entries("pbsm.token")]
    assert grants == ["password", "refresh_token"]
    assert 401 in [e.status for e in system.sims.ledger.entries("pbsm.status")]


async def test_ambiguous_trigger_failure_follows_the_unknown_outcome_policy(
    amqp_url: str, sims: RunningSimulators
) -> None:
    settings = fast_settings(
        amqp_url,
        sims.base_url,
        store="redis",
        connections={"tmf622": {"retrying": {"unknown_outcome": "retry"}}},
    )
    async with running_system(settings, sims.sims) as system:
        # 502 may come after the backend acted: PBSM (policy `fail`) must not trigger again ...
        system.sims.inject(Fault(route="pbsm.trigger", status=502, times=1))
        batch_id = await system.publish("trigger-batch", {"batch": "B9"})
        terminal = await system.events.terminal(batch_id)
        assert terminal["data"]["error"]["kind"] == "unknown_outcome"
        assert len(system.sims.ledger.entries("pbsm.trigger")) == 1
        # ... nor TMF622 by default: its document never says it deduplicates on
        # X-Correlation-ID, so a second PATCH could add the link twice ...
        system.sims.inject(Fault(route="tmf622.patch", status=502, times=1))
        paylink = {"business_id": "PR", "order_id": "O9", "payment_link": "p"}
        once_id = await system.publish("add-paylink", paylink)
        terminal = await system.events.terminal(once_id)
        assert terminal["type"] == "flowgate.add-paylink.failed"
        assert terminal["data"]["error"]["kind"] == "unknown_outcome"
        assert len(system.sims.ledger.entries("tmf622.patch")) == 1
        # ... while a connection set to `retry` PATCHes again, with the same correlation id.
        system.sims.inject(Fault(route="tmf622.patch", status=502, times=1))
        retry_id = await system.publish("add-paylink", paylink, connection="retrying")
        terminal = await system.events.terminal(retry_id)
        assert terminal["type"] == "flowgate.add-paylink.succeeded"
        patches = system.sims.ledger.entries("tmf622.patch")[1:]
        assert [p.headers["x-correlation-id"] for p in patches] == [retry_id, retry_id]


async def test_tmf622_503_is_retried_only_with_retry_after_and_504_is_unknown(
    system: System,
) -> None:
    paylink = {"business_id": "PR", "order_id": "O5", "payment_link": "p"}
    # The b2bsoft-ux document: a 503 without Retry-After is handled as a 500 (final) ...
    system.sims.inject(Fault(route="tmf622.patch", status=503, times=1))
    final_id = await system.publish("add-paylink", paylink)
    terminal = await system.events.terminal(final_id)
    error = terminal["data"]["error"]
    assert (error["kind"], error["http_status"], error["retriable"]) == ("rejected", 503, False)
    assert "HTTP 503 without Retry-After, handled as a 500 (final)" in error["message"]
    assert len(system.sims.ledger.entries("tmf622.patch")) == 1
    dead = await system.broker.get("flowgate.dead-letters")
    assert dead is not None and dead.headers["x-flowgate-error-kind"] == "rejected"
    await dead.ack()
    # ... with one, the PATCH is tried again after it.
    system.sims.inject(Fault(route="tmf622.patch", status=503, times=1, retry_after=0.3))
    later_id = await system.publish("add-paylink", paylink)
    terminal = await system.events.terminal(later_id)
    assert terminal["type"] == "flowgate.add-paylink.succeeded"
    patches = system.sims.ledger.entries("tmf622.patch")
    assert [(p.headers["x-correlation-id"], p.status) for p in patches][1:] == [
        (later_id, 503),
        (later_id, 200),
    ]
    # A 504: the gateway timed out, the backend may have added the link: unknown outcome.
    system.sims.inject(Fault(route="tmf622.patch", status=504, times=1))
    gateway_id = await system.publish("add-paylink", paylink)
    terminal = await system.events.terminal(gateway_id)
    assert terminal["data"]["error"]["kind"] == "unknown_outcome"
    assert "HTTP 504" in terminal["data"]["error"]["message"]
    assert len(system.sims.ledger.entries("tmf622.patch")) == 4


async def test_a_schedule_missing_a_field_or_with_a_bad_cron_is_invalid_before_any_call(
    system: System,
) -> None:
    schedule = {
        "quartz_cron": "0 6 6 ? * FRI",
        "start": "2030-11-16T16:56:00Z",
        "end": "2030-11-18T16:55:00Z",
        "retry_count": 1,
    }
    no_retry = {k: v for k, v in schedule.items() if k != "retry_count"}
    cases = {
        "schedule.retry_count: Field required": no_retry,
        "field 6 (day-of-week) 'FR'": {**schedule, "quartz_cron": "0 6 6 ? * FR"},
    }
    for reason, bad in cases.items():
        command_id = await system.publish("start-process", {"process_name": "P", "schedule": bad})
        terminal = await system.events.terminal(command_id)
        assert terminal["data"]["error"]["kind"] == "invalid"
        assert reason in terminal["data"]["error"]["message"]
    assert system.sims.ledger.entries("robusta.start") == []


async def test_a_scheduled_process_is_first_polled_at_its_start(system: System) -> None:
    # Its start a few seconds away, whole seconds (startDate has no fractions).
    start = datetime.fromtimestamp(math.ceil(time.time()) + 3, UTC)
    command_id = await system.publish(
        "start-process",
        {
            "process_name": "Scheduled",
            "schedule": {
                "quartz_cron": "0 * * * * ?",
                "start": start.isoformat(),
                "end": (start + timedelta(days=1)).isoformat(),
                "retry_count": 0,
            },
        },
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.start-process.succeeded"
    [saved] = system.sims.ledger.entries("robusta.start")
    assert saved.json is not None
    assert (saved.json["runOnce"], saved.json["runImmediately"]) == ("N", "N")
    statuses = system.sims.ledger.entries("robusta.status")
    # Polled from its start (first_delay 0.25 s after it), not from when it was saved.
    assert saved.at < start.timestamp() <= statuses[0].at
