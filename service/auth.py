"""The API key writes need: `X-API-Key: KEY` or `Authorization: Bearer KEY`; reads stay open."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .config import ServiceConfig
from .errors import ApiError

_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="the service's API key (writes only)")
_BEARER = HTTPBearer(auto_error=False, description="the service's API key as a bearer token (writes only)")


def write_guard(config: ServiceConfig) -> Callable[..., None]:
    """A FastAPI dependency that lets a write through when no key is set or the request carries it.

    The key is compared with `hmac.compare_digest`, in time independent of where a
    wrong key differs. A missing or wrong key answers 401 with `WWW-Authenticate: Bearer`.

    Example:
        >>> router.put("/items", dependencies=[Depends(write_guard(config))])  # doctest: +SKIP
    """
    if config.api_key is None:

        def open_write() -> None:
            """No API key configured: writes are open."""

        return open_write
    expected = config.api_key.encode("utf-8")

    def require_key(
        api_key: str | None = Security(_API_KEY),
        bearer: HTTPAuthorizationCredentials | None = Security(_BEARER),
    ) -> None:
        given = [g for g in (api_key, bearer.credentials if bearer is not None else None) if g is not None]
        if not given:
            raise ApiError(401, "this write needs the API key: send 'X-API-Key: KEY' or 'Authorization: Bearer KEY'",
                           {"WWW-Authenticate": "Bearer"})
        # Both are compared (no early exit), so the time does not tell which header was right.
        matches = [hmac.compare_digest(g.encode("utf-8", "surrogateescape"), expected) for g in given]
        if not any(matches):
            raise ApiError(401, "wrong API key", {"WWW-Authenticate": "Bearer"})

    return require_key
