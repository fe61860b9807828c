"""httpx client of Product-Live's public API: Data Factory job executions and partner
invitations, every call paced by the account's shared rate limit.

Every call authenticates with `X-Api-Key` and first takes a slot of the account's limit
(`workers.ratelimit`, shared by every process): with no room, `Throttled` says how long to
wait and nothing is sent. A 429 pauses the whole account for its `Retry-After` (the window
when it sends none) and is `Throttled` too, not a `VendorUnavailable`: the vendor refused the
call unread, so it is safe to send again, and waiting for the account's limit is no failure of
the command: it must not spend its attempts and end `exhausted` in a dead letter while the
account is busy. Other answers follow `workers.vendors._http` (502/503/504 and transport
errors retried, a 401 or 404 final).
"""

from __future__ import annotations

import contextlib
import random
from typing import TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from workers.errors import Throttled, VendorRejected
from workers.metrics import current as current_metrics
from workers.ratelimit import LimiterUnavailable, MemoryRateLimiter, RateLimiter
from workers.vendors._http import call, error_for, json_or_none, parse_retry_after
from workers.vendors.productlive.config import ProductLiveConnection
from workers.vendors.productlive.models import (
    ErrorBody,
    JobExecution,
    JobExecutionRequest,
    PartnerInvitation,
)

__all__ = ["INVITATION_PATH", "JOB_EXECUTIONS_PATH", "ProductLiveClient"]

VENDOR = "productlive"
JOB_EXECUTIONS_PATH = "/v1/data_factory/job_executions"
INVITATION_PATH = "/v1/partner-invitations/{id}"

# Seconds to come back when the shared count cannot be read (Redis down).
_LIMITER_DOWN_WAIT = 2.0
_MAX_MESSAGE = 500

AnswerT = TypeVar("AnswerT", bound=BaseModel)


class ProductLiveClient:
    """One per connection; every command type of the connection shares it."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        connection: ProductLiveConnection,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._http = http
        self._connection = connection
        # Without a shared limiter (a client built outside the registry): this process only.
        self._limiter = limiter if limiter is not None else MemoryRateLimiter()
        self._limit = connection.rate_limit.limit()

    @property
    def connection(self) -> ProductLiveConnection:
        return self._connection

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    async def create_job_execution(self, request: JobExecutionRequest) -> JobExecution:
        """`POST /v1/data_factory/job_executions`: run a job; the answer is its execution."""
        response = await self._call(
            "POST", JOB_EXECUTIONS_PATH, what="Product-Live job execution create", body=request
        )
        return _read(response, JobExecution, "Product-Live job execution create")

    async def job_execution(self, execution_id: str) -> JobExecution:
        """`GET /v1/data_factory/job_executions/{id}`."""
        what = f"Product-Live job execution {execution_id}"
        path = f"{JOB_EXECUTIONS_PATH}/{quote(execution_id, safe='')}"
        return _read(await self._call("GET", path, what=what), JobExecution, what)

    async def partner_invitation(self, invitation_id: str) -> PartnerInvitation:
        """`GET /v1/partner-invitations/{id}`."""
        what = f"Product-Live partner invitation {invitation_id}"
        path = INVITATION_PATH.format(id=quote(invitation_id, safe=""))
        return _read(await self._call("GET", path, what=what), PartnerInvitation, what)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: JobExecutionRequest | None = None,
    ) -> httpx.Response:
        connection = self._connection
        bucket = connection.bucket
        try:
            decision = await self._limiter.acquire(bucket, self._limit)
        except LimiterUnavailable as exc:
            _waited("limiter_unavailable", _LIMITER_DOWN_WAIT)
            raise Throttled(f"{what}: {exc}; trying again later", wait=_LIMITER_DOWN_WAIT) from None
        slot = decision.slot
        if slot is None:
            why = (
                "paused after a 429"
                if decision.paused
                else f"{self._limit.requests} requests per {self._limit.window:g} s used"
            )
            wait = decision.wait + self._spread()
            _waited("paused" if decision.paused else "limit", wait)
            raise Throttled(
                f"{what}: Product-Live account limit ({why}); next slot in {decision.wait:.1f} s",
                wait=wait,
            )
        headers = {
            "X-Api-Key": connection.api_key.get_secret_value(),
            "accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self._http.build_request(
            method,
            connection.base_url.rstrip("/") + path,
            headers=headers,
            json=body.wire() if body is not None else None,
            timeout=connection.timeout,
        )
        try:
            response = await call(self._http, request, what=what)
        finally:
            # When this fails the entry keeps the time its slot was taken: the margin covers it.
            with contextlib.suppress(LimiterUnavailable):
                await self._limiter.settle(slot)
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            pause = min(
                retry_after if retry_after is not None else self._limit.window,
                connection.retry.max_retry_after,
            )
            with contextlib.suppress(LimiterUnavailable):
                await self._limiter.pause(bucket, pause)
            wait = pause + self._spread()
            _waited("http_429", wait)
            raise Throttled(
                f"{what}: HTTP 429: the Product-Live account is paused for {pause:g} s",
                wait=wait,
            )
        if not response.is_success:
            code, message = _vendor_error(response)
            raise error_for(response, what=what, vendor_code=code, message=message)
        return response

    def _spread(self) -> float:
        """Up to one slot's share of the window, so waiters do not all come back at once."""
        return random.uniform(0.0, self._limit.window / self._limit.requests)


def _waited(reason: str, seconds: float) -> None:
    """A call that waits for the account's limit: the rate-limit metric."""
    current_metrics().rate_limit_wait(VENDOR, reason, seconds)


def _read(response: httpx.Response, model: type[AnswerT], what: str) -> AnswerT:
    payload = json_or_none(response)
    try:
        return model.model_validate(payload)
    except ValidationError:
        raise VendorRejected(
            f"{what}: answered {response.status_code} without the documented object",
            http_status=response.status_code,
        ) from None


def _vendor_error(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = ErrorBody.model_validate(json_or_none(response))
    except ValidationError:
        return None, ""
    parts = [str(p) for p in (body.error, body.message) if isinstance(p, str | int) and p]
    if isinstance(body.message, list):
        parts.extend(str(p) for p in body.message)
    return None, ": ".join(parts)[:_MAX_MESSAGE]
