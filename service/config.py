"""What the HTTP service allows: the API key, request limits, CORS and how often it saves."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import InvalidArgumentError

MIB = 1 << 20


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of one service process; every limit is checked at the boundary and answered 413 or 422.

    Attributes:
        api_key: when set, every write (PUT/DELETE /items, POST /events, POST /save) needs
            `X-API-Key: KEY` or `Authorization: Bearer KEY`; reads stay open. None: writes are open
            too (only bind to loopback then).
        max_k: largest `k` a query may ask for (422 above it).
        max_text_chars: longest text query, and longest `q` of catalog browsing (422 above it).
        max_upload_bytes: largest uploaded image, per file (413 above it).
        max_put_items: most items in one PUT /items, events in one POST /events, and history
            items in one POST /recommendations (422 above it).
        max_request_bytes: largest request body, all files and fields together (413 above it).
        cors_origins: origins allowed to call the API from a browser; () turns CORS off.
        save_every_s: save the model folder this often when there were writes since the last
            save; 0 turns the background save off (POST /save and shutdown still save).

    Example:
        >>> ServiceConfig(api_key="s3cret", max_k=50).max_k
        50
    """

    api_key: str | None = None
    max_k: int = 100
    max_text_chars: int = 1000
    max_upload_bytes: int = 10 * MIB
    max_put_items: int = 1000
    max_request_bytes: int = 64 * MIB
    cors_origins: tuple[str, ...] = ()
    save_every_s: float = 60.0

    def __post_init__(self) -> None:
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            raise InvalidArgumentError(f"api_key must be a non-empty string or None, got {self.api_key!r}")
        for name in ("max_k", "max_text_chars", "max_upload_bytes", "max_put_items", "max_request_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"ServiceConfig.{name} must be a positive integer, got {value!r}")
        if isinstance(self.cors_origins, str):
            raise InvalidArgumentError(f"cors_origins must be a tuple of origins, got the string {self.cors_origins!r}")
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        if not all(isinstance(o, str) and o for o in self.cors_origins):
            raise InvalidArgumentError(f"cors_origins must hold non-empty strings, got {self.cors_origins!r}")
        save = self.save_every_s
        if isinstance(save, bool) or not isinstance(save, (int, float)) or not math.isfinite(save) or save < 0:
            raise InvalidArgumentError(f"save_every_s must be a finite number of seconds >= 0 (0: off), got {save!r}")
