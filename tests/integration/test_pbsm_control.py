"""PBSM batch control on real RabbitMQ against the simulator: `rerun-batch` and
`restart-batch` end to end, the request compared field by field with the Oracle document's
Rerun and Restart APIs (External Scheduler Interface), for a batch and for a batch group."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import System

_BASE = "/SchedulerService/rest-api/v1/external/"
_HEADERS = {
    "ofs_tenant_id": "TENANT1",
    "ofs_service_id": "PBSMCS",
    "ofs_workspace_id": "WS001",
    "ofs_remote_user": "batchuser",
    "locale": "en-US",
}


def _check_call(system: System, route: str, body: dict[str, Any]) -> None:
    [call] = [e for e in system.sims.ledger.entries(f"pbsm.{route}") if e.json == body]
    assert (call.method, call.path) == ("POST", _BASE + route)
    for header, value in _HEADERS.items():
        assert call.headers[header] == value
    assert call.headers["authorization"].startswith("Bearer ")
    assert call.headers["content-type"] == "application/json"


async def _ended_run(system: System, batch: str, outcome: str, *, group: bool = False) -> str:
    system.sims.set_outcome("pbsm", batch, outcome)
    data: dict[str, Any] = {"batch": batch}
    if group:
        data |= {"group": True, "group_params": [{"batch": "M1", "params": {}}]}
    command_id = await system.publish("trigger-batch", data)
    terminal = await system.events.terminal(command_id)
    run_id: str = terminal["data"]["vendor_ref"]["batch_run_id"]
    return run_id


async def test_rerun_batch_runs_an_ended_run_again_and_follows_the_new_run(
    system: System,
) -> None:
    old = await _ended_run(system, "RERUN1", "FAILED")
    system.sims.set_outcome("pbsm", "RERUN1", "SUCCESSFUL")
    command_id = await system.publish("rerun-batch", {"batch": "RERUN1", "batch_run_id": old})
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.rerun-batch.succeeded"
    assert system.events.kinds(command_id)[0] == "accepted"
    new = terminal["data"]["vendor_ref"]["batch_run_id"]
    assert new.startswith("RERUN1_") and new != old
    _check_call(system, "rerun", {"batchName": "RERUN1", "batchRunId": old})
    followed = [e.json for e in system.sims.ledger.entries("pbsm.status")]
    assert {"batchRunId": new} in followed


async def test_restart_batch_resumes_a_failed_group_run_under_a_new_run_id(
    system: System,
) -> None:
    old = await _ended_run(system, "GROUP1", "FAILED", group=True)
    system.sims.set_outcome("pbsm", "GROUP1", "SUCCESSFUL")
    command_id = await system.publish(
        "restart-batch", {"batch": "GROUP1", "batch_run_id": old, "group": True}
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.restart-batch.succeeded"
    assert terminal["data"]["vendor_ref"]["batch_run_id"] != old
    # The document's batch group body is the batch body: batchName is the group's code.
    _check_call(system, "restart", {"batchName": "GROUP1", "batchRunId": old})


async def test_restarting_a_successful_run_is_rejected_with_the_vendors_code(
    system: System,
) -> None:
    old = await _ended_run(system, "DONE1", "SUCCESSFUL")
    command_id = await system.publish("restart-batch", {"batch": "DONE1", "batch_run_id": old})
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.restart-batch.failed"
    error = terminal["data"]["error"]
    assert (error["kind"], error["vendor_code"]) == ("rejected", "-6")
    assert "No executable job is present" in error["message"]
    assert "accepted" not in system.events.kinds(command_id)


async def test_rerun_of_a_run_the_vendor_does_not_know_is_rejected(system: System) -> None:
    command_id = await system.publish(
        "rerun-batch", {"batch": "NOPE", "batch_run_id": "NOPE_2026-01-01_1_1"}
    )
    terminal = await system.events.terminal(command_id)
    error = terminal["data"]["error"]
    assert (error["kind"], error["vendor_code"]) == ("rejected", "-3")


async def test_interrupt_batch_stops_a_running_batch_and_answers_its_state(
    system: System,
) -> None:
    system.sims.config.pbsm.run_seconds = 60  # still going when the interrupt comes
    started = await system.publish("trigger-batch", {"batch": "LONG1"})
    async with asyncio.timeout(10), system.events.changed:
        await system.events.changed.wait_for(lambda: "accepted" in system.events.kinds(started))
    run_id = system.events.by_command[started][0]["data"]["vendor_ref"]["batch_run_id"]
    command_id = await system.publish("interrupt-batch", {"batch": "LONG1", "batch_run_id": run_id})
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.interrupt-batch.succeeded"
    assert system.events.kinds(command_id) == ["succeeded"], "synchronous: no accepted"
    assert terminal["data"]["status"] == "INTERRUPTED"
    assert terminal["data"]["result"]["batchStatusCode"] == "-2"
    _check_call(system, "interrupt", {"batchName": "LONG1", "batchRunId": run_id})
    # The interrupted run's own command ends cancelled, once.
    original = await system.events.terminal(started)
    assert original["type"] == "flowgate.trigger-batch.cancelled"


async def test_interrupting_an_ended_run_is_rejected_with_the_vendors_code(
    system: System,
) -> None:
    old = await _ended_run(system, "ENDED1", "SUCCESSFUL")
    command_id = await system.publish("interrupt-batch", {"batch": "ENDED1", "batch_run_id": old})
    terminal = await system.events.terminal(command_id)
    error = terminal["data"]["error"]
    assert (error["kind"], error["vendor_code"]) == ("rejected", "-8")
    assert "Job is not ongoing/aborted" in error["message"]
