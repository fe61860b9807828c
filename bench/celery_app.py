"""The Celery way: one task per command, polling with `self.retry(countdown=...)`.

As a team without flowgate would write it: a Celery app on the same RabbitMQ, a synchronous
httpx client, late acks (a command is acked once its outcome is published, like flowgate's),
publisher confirms on, and the terminal event published to `flowgate.events` with kombu.
Run: `celery -A bench.celery_app worker -P prefork -c 2` or `-P threads -c 64`. The harness
publishes task messages (Celery protocol 2) itself, see `task_message`.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import httpx
from celery import Celery, Task
from kombu.entity import Exchange

from bench.vendors import PLANS, Call, pbsm_token_call
from bench.workload import poll_delay

__all__ = ["TASK_NAME", "app", "run_command", "task_message"]

TASK_NAME = "bench.run_command"
app = Celery("bench", broker=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1//"))
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
EVENTS = Exchange("flowgate.events", type="topic", durable=True)  # type: ignore[no-untyped-call]
_state: dict[str, Any] = {}
_lock = threading.RLock()


def _client() -> httpx.Client:
    # one client per process, created after the prefork fork; httpx.Client is thread-safe
    pid = os.getpid()
    with _lock:
        if _state.get("pid") != pid:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
            _state.update(pid=pid, http=httpx.Client(limits=limits, timeout=30.0), token=None)
        return _state["http"]  # type: ignore[no-any-return]


def _send(call: Call) -> Any:
    http = _client()
    headers = call.headers
    base = os.environ[f"FLOWGATE_{call.vendor.upper()}__DEFAULT__BASE_URL"]
    if call.needs_token:
        with _lock:
            if _state["token"] is None:
                _state["token"] = _send(pbsm_token_call())["access_token"]
        headers = {**headers, "Authorization": f"Bearer {_state['token']}"}
    response = http.request(
        call.method, base + call.path, headers=headers, json=call.json, content=call.content
    )
    response.raise_for_status()
    return response.json()


@app.task(bind=True, name=TASK_NAME, max_retries=None)  # type: ignore[untyped-decorator]
def run_command(
    self: Task,
    command_type: str,
    data: dict[str, Any],
    command_id: str,
    ref: dict[str, Any] | None = None,
    polls: int = 0,
) -> None:
    plan = PLANS[command_type]
    if ref is None:
        step = plan.triggered(_send(plan.trigger(data, command_id)), data)
    else:
        step = plan.status(ref, [_send(c) for c in plan.status_calls(ref)])
        while step.state == "more":
            step = plan.status(step.ref, [_send(c) for c in plan.status_calls(step.ref)])
        polls += 1
    if step.state == "running":
        kwargs = {"ref": step.ref, "polls": polls}
        raise self.retry(kwargs=kwargs, countdown=poll_delay(polls))
    body = {
        "type": f"flowgate.{command_type}.{step.state}",
        "data": {"command_id": command_id, "command_type": command_type, "polls": polls},
    }
    with app.producer_or_acquire() as producer:
        producer.publish(
            json.dumps(body),
            exchange=EVENTS,
            routing_key=f"{command_type}.{step.state}",
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            declare=[],
        )


def task_message(
    command_type: str, data: dict[str, Any], command_id: str
) -> tuple[bytes, dict[str, Any]]:
    """A Celery protocol-2 task message (body, headers), as `run_command.delay(...)` sends."""
    headers: dict[str, Any] = {
        "lang": "py",
        "task": TASK_NAME,
        "id": command_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": command_id,
        "parent_id": None,
        "argsrepr": "",
        "kwargsrepr": "",
        "origin": "bench",
        "ignore_result": True,
    }
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    body = json.dumps([[command_type, data, command_id], {}, embed]).encode()
    return body, headers
