"""Routes on the catalog: browse, one item, its image, its similar items; add, update and remove items.

Item ids may hold '/' (send it as %2F or as is): the routes take the id as a path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from core.errors import ImageError, InvalidArgumentError
from encoders.imageio import read_image_file
from engine import Engine, ItemFilter
from engine.tables import clean_id

from .browse import Browser
from .config import ServiceConfig
from .errors import ApiError
from .jsonable import item_fields, item_list
from .persistence import Persister
from .schemas import (
    ERRORS,
    WRITE_ERRORS,
    CatalogPage,
    ItemDetail,
    ItemList,
    Removed,
    Upserted,
    lone_surrogate,
    put_items_body,
)
from .uploads import media_type, store_upload

IMAGE_FIELD = "image:"


def item_filter(category: list[str] | None, exclude: list[str] | None = None) -> ItemFilter | None:
    """The engine filter of the `category` and `exclude` query parameters (None: no filter)."""
    if not category and not exclude:
        return None
    return ItemFilter(categories=category or None, exclude=exclude or ())


def items_router(engine: Engine, config: ServiceConfig, persister: Persister, guard: Callable[..., None]) -> APIRouter:
    """The /items routes over `engine`; writes pass `guard` and are counted by `persister`."""
    router = APIRouter(tags=["items"])
    browser = Browser()
    k_query = Query(10, ge=1, le=config.max_k, description=f"how many items, 1 to {config.max_k}")
    category_query = Query(None, description="only items of these categories (repeat the parameter for several)")

    @router.get("/items", response_model=CatalogPage, responses=ERRORS)
    def browse_items(
        offset: int = Query(0, ge=0, description="items to skip"),
        limit: int = Query(48, ge=1, le=1000, description="items per page"),
        category: list[str] | None = category_query,
        q: str | None = Query(None, max_length=config.max_text_chars, description="words of the title, any case"),
    ) -> dict[str, Any]:
        """A page of the catalog, in catalog order, for the gallery grid."""
        return browser.page(engine.catalog, offset, limit, category, q)

    @router.get("/items/{item_id:path}/similar", response_model=ItemList, responses=ERRORS)
    def similar_items(
        item_id: str,
        k: int = k_query,
        category: list[str] | None = category_query,
        exclude: list[str] | None = Query(None, description="never these item ids (repeat for several)"),
    ) -> dict[str, Any]:
        """The k items most like this one (the item itself excluded), best first: `engine.similar`."""
        matches = engine.similar(item_id, k, filter=item_filter(category, exclude))
        return item_list(matches, engine.catalog.base_dir)

    @router.get(
        "/items/{item_id:path}/image",
        response_class=Response,
        responses={200: {"content": {"image/*": {}}, "description": "the image file's bytes"}, **ERRORS},
    )
    def item_image(item_id: str, request: Request) -> Response:
        """The item's image, as stored in the catalog folder (ETag: a repeat answers 304 Not Modified)."""
        catalog = engine.catalog
        path = catalog.image_path(catalog.row(item_id))
        if path is None:
            raise ApiError(404, f"item {item_id!r} has no image")
        try:
            data = read_image_file(path, engine.config.images, catalog.image_root)
        except ImageError as exc:
            raise ApiError(404, f"the image of item {item_id!r} cannot be served: {exc}") from None
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=media_type(data, path), headers=headers)

    @router.get("/items/{item_id:path}", response_model=ItemDetail, responses=ERRORS)
    def get_item(item_id: str) -> dict[str, Any]:
        """One item's catalog fields, and whether it has an image to serve."""
        catalog = engine.catalog
        row = catalog.row(item_id)
        path = catalog.image_path(row)
        fields = catalog.fields(row)
        has_image = path is not None and path.is_file()
        return {"item_id": str(fields["id"]), "fields": item_fields(fields, catalog.base_dir), "has_image": has_image}

    @router.put(
        "/items",
        response_model=Upserted,
        dependencies=[Depends(guard)],
        openapi_extra=put_items_body(config),
        responses={**WRITE_ERRORS, 415: {"description": "neither JSON nor multipart"}},
    )
    async def put_items(request: Request) -> dict[str, Any]:
        """Add new items and update existing ones (`engine.upsert`); text or image changes are encoded again.

        JSON: a list of item dicts. Multipart: field `items` holds that list as JSON text,
        and a file field `image:<item_id>` carries that item's image; uploads are stored
        content-addressed under `<catalog folder>/uploads/` and never overwrite a file.
        """
        items, uploads = await read_put_body(request, config)
        return await run_in_threadpool(upsert_items, engine, config, persister, items, uploads)

    @router.delete(
        "/items/{item_id:path}", response_model=Removed, dependencies=[Depends(guard)], responses=WRITE_ERRORS
    )
    def delete_item(item_id: str) -> dict[str, Any]:
        """Remove an item: no query that starts after this answer returns it."""
        engine.remove([item_id])
        persister.wrote()
        return {"removed": clean_id(item_id)}

    return router


async def read_put_body(request: Request, config: ServiceConfig) -> tuple[list[Any], dict[str, bytes]]:
    """The item list and the uploaded images (item id -> bytes) of a PUT /items request."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    uploads: dict[str, bytes] = {}
    if kind == "multipart/form-data":
        form = await request.form(
            max_files=config.max_put_items, max_fields=config.max_put_items + 1, max_part_size=config.max_request_bytes
        )
        try:
            text = form.get("items")
            if not isinstance(text, str):
                raise ApiError(422, "a multipart PUT /items needs a text field 'items' holding the JSON list of items")
            for name, value in form.multi_items():
                if name == "items":
                    continue
                if not name.startswith(IMAGE_FIELD) or not isinstance(value, UploadFile):
                    raise ApiError(
                        422, f"unexpected form field {name!r}: expected 'items' and files named 'image:<item_id>'"
                    )
                item_id = name[len(IMAGE_FIELD):]
                if item_id in uploads:
                    raise ApiError(422, f"two files for item {item_id!r}")
                data = await value.read(config.max_upload_bytes + 1)
                if len(data) > config.max_upload_bytes:
                    raise ApiError(413, f"the image for item {item_id!r} is over the limit of "
                                        f"{config.max_upload_bytes:,} bytes (ServiceConfig.max_upload_bytes)")
                uploads[item_id] = data
        finally:
            await form.close()
    elif kind in ("application/json", "") or kind.endswith("+json"):
        text = (await request.body()).decode("utf-8", "replace")
    else:
        raise ApiError(415, f"PUT /items takes application/json or multipart/form-data, got {kind!r}")
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise ApiError(422, f"the items are not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise ApiError(422, f"PUT /items takes a JSON list of item objects, got {type(items).__name__}")
    bad = lone_surrogate(items)
    if bad is not None:
        raise ApiError(422, f"the items hold {bad!r:.60}, with a lone UTF-16 surrogate, which is not text")
    return items, uploads


def upsert_items(
    engine: Engine, config: ServiceConfig, persister: Persister, items: list[Any], uploads: dict[str, bytes]
) -> dict[str, Any]:
    """Store the uploads, point their items at them, upsert; the answer of PUT /items."""
    if len(items) > config.max_put_items:
        raise ApiError(422, f"{len(items):,} items in one request; at most {config.max_put_items:,} "
                            "(ServiceConfig.max_put_items): send them in batches")
    bad = next((i for i, item in enumerate(items) if not isinstance(item, dict)), None)
    if bad is not None:
        kind = type(items[bad]).__name__
        raise ApiError(422, f"item {bad} is a {kind} ({items[bad]!r:.60}); expected an object of fields")
    if uploads:
        catalog = engine.catalog
        columns = catalog.columns.for_items({name for item in items for name in item})
        by_id = {}
        for item in items:
            if columns.id in item:
                try:
                    by_id[clean_id(item[columns.id])] = item
                except InvalidArgumentError:
                    pass  # the engine names the bad id below
        for item_id, data in uploads.items():
            key = clean_id(item_id)
            if key not in by_id:
                raise ApiError(422, f"the file 'image:{item_id}' names no item of the list")
            try:
                path = store_upload(data, catalog.base_dir, engine.config.images, f"the image for item {item_id!r}")
            except OSError as exc:  # the service's folder, not the request, is at fault
                raise ApiError(500, f"cannot store the upload under '{catalog.base_dir}': {exc}") from None
            by_id[key][columns.image] = path
    done = engine.upsert(items)
    persister.wrote()
    return done.to_dict()
