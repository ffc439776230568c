"""The JSON the API reads and writes, as pydantic models: the OpenAPI spec at /openapi.json is built from them.

Request models whose bounds come from `ServiceConfig` (k, list lengths) are made per
app by `request_models(config)`, so the spec states the limits the service enforces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .config import ServiceConfig

_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: Any) -> str | None:
    """The first string of a JSON value (keys included) holding a lone UTF-16 surrogate, or None.

    JSON may spell one ("\\ud800"), Python decodes it, and no UTF-8 table or file can
    hold it: such a value is refused at the boundary (422) instead of failing deep inside.

    Example:
        >>> lone_surrogate({"title": "ok", "tags": ["bad " + chr(0xD800)]}) == "bad " + chr(0xD800)
        True
    """
    if isinstance(value, str):
        return value if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        value = [x for pair in value.items() for x in pair]
    if isinstance(value, list):
        return next((found for v in value if (found := lone_surrogate(v)) is not None), None)
    return None


def _text(value: str) -> str:
    if lone_surrogate(value) is not None:
        raise ValueError(f"{value!r:.60} holds a lone UTF-16 surrogate, which is not text")
    return value


Text = Annotated[str, AfterValidator(_text)]
Id = Annotated[Text | int, Field(description="an id; a number is read as its decimal text (42 -> '42')")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
F = TypeVar("F", bound=Callable[..., Any])


class Item(BaseModel):
    """One entry of a list answer."""

    item_id: str
    score: float | None = Field(description=(
        "higher is better. similar/search/source 'content': cosine similarity in [-1, 1] in the query's own "
        "modalities; a model's name: share of the catalogue the model ranks below the item, in [0, 1]; "
        "'popularity': in [0, 1]; null in catalog browsing"
    ))
    fields: dict[str, Any] = Field(description="the item's catalog fields; missing values are null")
    source: str = Field(description="what produced it: catalog, similar, search, a model name, content or popularity")
    because: str | None = Field(description="the history item that led to this recommendation, if any")


class ItemList(BaseModel):
    """A ranked list: the same items in the same order as the Python API gives."""

    items: list[Item]


class CatalogPage(BaseModel):
    """A page of the catalog in catalog order (score null, source 'catalog')."""

    items: list[Item]
    total: int = Field(description="items matching the category and q filters, over all pages")
    categories: list[str] = Field(description="every category of the catalog, sorted")


class ItemDetail(BaseModel):
    """One item's fields."""

    item_id: str
    fields: dict[str, Any]
    has_image: bool = Field(description="GET /items/{item_id}/image serves a file")


class Health(BaseModel):
    """The service is up; what it serves."""

    status: Literal["ok"]
    items: int = Field(description="items with a vector (what similar and search can return)")
    model: str | None = Field(description="the personalisation model's name, or null before `shopvec fit`")
    version: str = Field(description="the shopvec version")
    events: int = Field(description="interactions recorded through POST /events, kept with the model")


class UserList(BaseModel):
    """Users that GET /users/{user_id}/recommendations knows."""

    users: list[str] = Field(description="the model's training users, then users known only from recorded events")
    total: int


class SkippedItem(BaseModel):
    """An item that was not (re)encoded, and why."""

    item_id: str
    reason: str


class Upserted(BaseModel):
    """What PUT /items did to each item."""

    added: list[str]
    updated: list[str] = Field(description="existing items whose fields changed")
    reencoded: list[str] = Field(description="items whose text or image changed: encoded again")
    skipped: list[SkippedItem]


class Removed(BaseModel):
    removed: str


class Recorded(BaseModel):
    recorded: int


class Saved(BaseModel):
    saved: str = Field(description="the model folder; it holds every write made before the request")


class ErrorOut(BaseModel):
    """Every error: the engine's message naming the bad value and what is valid."""

    error: str


class Event(BaseModel):
    """One interaction: a user viewed, bought or rated an item."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    item_id: Id
    timestamp: FiniteFloat | Text | None = Field(None, description="unix seconds or ISO 8601; default: now")
    weight: FiniteFloat | None = Field(None, description="strength of the interaction; default 1")


@dataclass(frozen=True)
class RequestModels:
    """The request bodies of one app, bounded by its config."""

    session: type[BaseModel]
    events: type[BaseModel]


def request_models(config: ServiceConfig) -> RequestModels:
    """Build the request bodies whose limits come from `config`."""

    class SessionRequest(BaseModel):
        """An anonymous visitor's history, oldest first."""

        model_config = ConfigDict(extra="forbid")

        history: list[Id] = Field(default_factory=list, max_length=config.max_put_items)
        k: int = Field(10, ge=1, le=config.max_k)
        category: list[Text] | None = Field(None, description="only items of these categories")

    class EventsRequest(BaseModel):
        """Interactions to record; each user's events join their history at once."""

        model_config = ConfigDict(extra="forbid")

        events: list[Event] = Field(max_length=config.max_put_items)

    return RequestModels(SessionRequest, EventsRequest)


def annotate(**types: type) -> Callable[[F], F]:
    """Give an endpoint's parameters these types: a request model made per app is a local class,
    which FastAPI cannot find from the string annotations `from __future__ import annotations` leaves."""

    def apply(function: F) -> F:
        function.__annotations__.update(types)
        return function

    return apply


def put_items_body(config: ServiceConfig) -> dict[str, Any]:
    """The OpenAPI request body of PUT /items (read by hand: JSON or multipart)."""
    item = {
        "type": "object",
        "description": (
            "an item's fields under the catalog's column names (id, title, description, category, image, "
            "price, stock, anything else); image: a path inside the catalog folder"
        ),
        "additionalProperties": True,
        "example": {
            "id": "sku-9", "title": "Blue kettle", "category": "kitchen", "price": 24.5, "image": "images/kettle.png"
        },
    }
    items = {"type": "array", "items": item, "maxItems": config.max_put_items}
    form = {
        "type": "object",
        "properties": {"items": {"type": "string", "description": "the JSON list of items, as text"}},
        "required": ["items"],
        "additionalProperties": {
            "type": "string",
            "format": "binary",
            "description": f"field `image:<item_id>`: that item's image (at most {config.max_upload_bytes:,} bytes)",
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": items}, "multipart/form-data": {"schema": form}},
        }
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "unknown item or user"},
    422: {"model": ErrorOut, "description": "a bad argument; the message names it"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    401: {"model": ErrorOut, "description": "missing or wrong API key"},
    413: {"model": ErrorOut, "description": "request or upload over the size limit"},
}
