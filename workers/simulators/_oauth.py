"""PBSM's OAuth token endpoint (IAM ``/oauth2/v1/token``) and the tokens it has issued.

flowgate must refresh a PBSM token when a scheduler call answers 401, so the simulator issues
real expiring tokens: opaque random strings valid for ``expires_in`` seconds. ``expire_all``
invalidates every access token at once (a token that expires early) while refresh tokens
stay valid, which is exactly the situation the refresh path exists for.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs

from starlette.responses import Response

from ._common import Clock, Inbound, basic_credentials, json_response
from ._config import PbsmConfig

__all__ = ["TokenStore"]


class TokenStore:
    """Issued access tokens (with their expiry on ``clock``) and refresh tokens."""

    def __init__(self, config: PbsmConfig, clock: Clock):
        self.config = config
        self._clock = clock
        self._access: dict[str, float] = {}
        self._refresh: set[str] = set()

    def expire_all(self) -> None:
        """Make every issued access token invalid now; refresh tokens remain usable."""
        self._access.clear()

    def reset(self) -> None:
        """Forget every token."""
        self._access.clear()
        self._refresh.clear()

    def valid(self, headers: dict[str, str]) -> bool:
        """Whether the request carries ``Authorization: Bearer <live access token>``."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expiry = self._access.get(token.strip())
        return scheme.lower() == "bearer" and expiry is not None and self._clock() < expiry

    def token(self, request: Inbound) -> Response:
        """``POST /oauth2/v1/token``: the password and refresh_token grants."""
        client = (self.config.client_id, self.config.client_secret)
        if basic_credentials(request.headers) != client:
            return json_response({"error": "invalid_client"}, 401)
        form = {key: values[0] for key, values in parse_qs(request.body).items()}
        grant = form.get("grant_type")
        if grant == "password":
            user = (form.get("username"), form.get("password"))
            if user != (self.config.username, self.config.password):
                return json_response({"error": "invalid_grant"}, 400)
            refresh = secrets.token_urlsafe(32)
            self._refresh.add(refresh)
        elif grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            if refresh not in self._refresh:
                return json_response({"error": "invalid_grant"}, 400)
        elif grant is None:
            return json_response({"error": "invalid_request"}, 400)
        else:
            return json_response({"error": "unsupported_grant_type"}, 400)
        access = secrets.token_urlsafe(32)
        self._access[access] = self._clock() + self.config.expires_in
        return json_response(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.config.expires_in,
                "refresh_token": refresh,
            }
        )
