"""OAuth2 tokens for one PBSM connection: fetched once, cached, refreshed one at a time.

`TokenManager.token()` returns a cached access token while it is fresh (until `expires_in`
minus `token_refresh_margin`). When it is stale, exactly one caller renews it under a lock
(refresh grant first, the password grant if the refresh is refused); every caller that waited on
that lock reuses the new token. After a 401, `invalidate(token)` drops the token only if it is
still the current one, so only the first caller that saw it stale causes a renewal.

Tokens, the password and the client secret are kept as `SecretStr` and never appear in messages
or reprs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr, ValidationError

from workers.errors import VendorRejected, VendorUnavailable
from workers.metrics import current as current_metrics
from workers.vendors._http import Calling, basic_auth, call, error_for, json_or_none
from workers.vendors.pbsm.config import PbsmConnection
from workers.vendors.pbsm.models import TokenAnswer

__all__ = ["FORM_CONTENT_TYPE", "TokenManager"]

WHAT = "PBSM token"
VENDOR = "pbsm"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"


class TokenManager:
    """One per PBSM connection; share it between every client and adapter of that connection."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        connection: PbsmConnection,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._connection = connection
        self._clock = clock
        self._lock = asyncio.Lock()
        self._access: SecretStr | None = None
        self._refresh: SecretStr | None = None
        self._expires_at = 0.0
        self._generation = 0  # bumped on every renewal

    def __repr__(self) -> str:
        state = "fresh" if self._is_fresh() else "stale"
        return f"TokenManager(token_endpoint={self._connection.token_endpoint!r}, {state})"

    def _is_fresh(self) -> bool:
        return self._access is not None and self._clock() < self._expires_at

    async def token(self) -> str:
        """A valid access token, renewing it first when it is missing or stale."""
        if self._is_fresh() and self._access is not None:
            return self._access.get_secret_value()
        seen = self._generation
        async with self._lock:
            # Someone renewed while we waited: reuse theirs, even if it is already "stale" by
            # the margin (a margin larger than expires_in must not cause a renewal per caller).
            if self._access is not None and (self._generation != seen or self._is_fresh()):
                return self._access.get_secret_value()
            try:
                access = await self._renew()
            except VendorUnavailable as exc:
                current_metrics().token_refresh(VENDOR, "unavailable")
                # A token request never starts a batch: whatever became of it, the trigger
                # that needed the token was not sent, so retrying it stays safe.
                exc.maybe_sent = False
                raise
            except VendorRejected:
                current_metrics().token_refresh(VENDOR, "refused")
                raise
            current_metrics().token_refresh(VENDOR, "ok")
            return access.get_secret_value()

    def invalidate(self, token: str) -> None:
        """The vendor refused `token` (401): drop it unless a newer one already replaced it."""
        if self._access is not None and self._access.get_secret_value() == token:
            self._access = None

    async def _renew(self) -> SecretStr:
        answer: TokenAnswer | None = None
        if self._refresh is not None:
            try:
                answer = await self._request(
                    {"grant_type": "refresh_token", "refresh_token": self._refresh}
                )
            except VendorRejected:
                answer = None  # refresh token expired or revoked: log in again
        if answer is None:
            connection = self._connection
            answer = await self._request(
                {
                    "grant_type": "password",
                    "scope": connection.scope,
                    "username": connection.username,
                    "password": connection.password,
                }
            )
        self._access = answer.access_token
        if answer.refresh_token is not None:
            self._refresh = answer.refresh_token
        # No expires_in: keep the token until a 401 invalidates it. A margin as long as the
        # lifetime would renew on every call: then renew at half the lifetime instead.
        lifetime = math.inf if answer.expires_in is None else answer.expires_in
        margin = self._connection.token_refresh_margin
        self._expires_at = self._clock() + (
            lifetime - margin if lifetime > margin else lifetime / 2
        )
        self._generation += 1
        return answer.access_token

    async def _request(self, fields: dict[str, str | SecretStr]) -> TokenAnswer:
        connection = self._connection
        form = [
            (name, value.get_secret_value() if isinstance(value, SecretStr) else value)
            for name, value in fields.items()
        ]
        request = self._http.build_request(
            "POST",
            connection.token_endpoint,
            headers={
                "Authorization": basic_auth(connection.client_id, connection.client_secret),
                "Content-Type": FORM_CONTENT_TYPE,
            },
            # Spaces become '+', as in the seed's `__myscopes__+offline_access`; ':' stays as is.
            content=urlencode(form, safe=":").encode("utf-8"),
            timeout=connection.timeout,
        )
        with Calling(VENDOR, "token"):
            response = await call(self._http, request, what=WHAT)
        payload = json_or_none(response)
        if not response.is_success:
            raise _token_error(response, payload)
        try:
            return TokenAnswer.model_validate(payload)
        except ValidationError:
            raise VendorRejected(
                f"{WHAT}: HTTP {response.status_code}: answer without an access_token",
                http_status=response.status_code,
            ) from None


def _token_error(response: httpx.Response, payload: object) -> VendorRejected | VendorUnavailable:
    code: str | None = None
    text = ""
    if isinstance(payload, dict):
        error, description = payload.get("error"), payload.get("error_description")
        code = error if isinstance(error, str) else None
        text = ": ".join(part for part in (code, description) if isinstance(part, str) and part)
    # The same rules as every other vendor call: 429/502/503/504 pass, the rest are final.
    return error_for(response, what=WHAT, vendor_code=code, message=text)
