"""Routes that search and personalise: text and photo search, users' and sessions' recommendations, events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, UploadFile

from core.errors import NotFittedError, UnknownUserError
from engine import Engine

from .config import ServiceConfig
from .errors import ApiError
from .jsonable import item_list
from .persistence import Persister
from .routes_items import item_filter
from .schemas import ERRORS, WRITE_ERRORS, ItemList, Recorded, UserList, annotate, request_models


def queries_router(
    engine: Engine, config: ServiceConfig, persister: Persister, guard: Callable[..., None]
) -> APIRouter:
    """The search, recommendation and event routes over `engine`."""
    router = APIRouter()
    models = request_models(config)
    k_doc = f"how many items, 1 to {config.max_k}"
    category_doc = "only items of these categories (repeat the parameter for several)"
    text_doc = f"what to look for, at most {config.max_text_chars} characters"

    @router.get("/search", response_model=ItemList, responses=ERRORS, tags=["search"])
    def search_text(
        text: str = Query(min_length=1, max_length=config.max_text_chars, description=text_doc),
        k: int = Query(10, ge=1, le=config.max_k, description=k_doc),
        category: list[str] | None = Query(None, description=category_doc),
    ) -> dict[str, Any]:
        """Items matching a text, best first: `engine.search(text=...)`."""
        matches = engine.search(text=text, k=k, filter=item_filter(category))
        return item_list(matches, engine.catalog.base_dir)

    @router.post(
        "/search",
        response_model=ItemList,
        responses={**ERRORS, 413: WRITE_ERRORS[413]},
        tags=["search"],
    )
    def search_upload(
        image: UploadFile | None = File(None, description=f"a photo, at most {config.max_upload_bytes:,} bytes"),
        text: str | None = Form(None, max_length=config.max_text_chars, description=text_doc),
        k: int = Form(10, ge=1, le=config.max_k, description=k_doc),
        category: list[str] | None = Form(None, description=category_doc),
    ) -> dict[str, Any]:
        """Items matching a photo, a text or both (multipart form): `engine.search(text=..., image=...)`."""
        data = None
        if image is not None:
            data = image.file.read(config.max_upload_bytes + 1)
            if len(data) > config.max_upload_bytes:
                raise ApiError(413, f"the image is over the limit of {config.max_upload_bytes:,} bytes "
                                    "(ServiceConfig.max_upload_bytes)")
        matches = engine.search(text=text, image=data, k=k, filter=item_filter(category))
        return item_list(matches, engine.catalog.base_dir)

    @router.get("/users", response_model=UserList, tags=["recommendations"])
    def list_users(
        offset: int = Query(0, ge=0, description="users to skip"),
        limit: int = Query(100, ge=1, le=10_000, description="users per answer"),
    ) -> dict[str, Any]:
        """Users with recommendations of their own: the model's training users, then users known only from events."""
        users = known_users(engine)
        return {"users": users[offset : offset + limit], "total": len(users)}

    @router.get(
        "/users/{user_id:path}/recommendations", response_model=ItemList, responses=ERRORS, tags=["recommendations"]
    )
    def user_recommendations(
        user_id: str,
        k: int = Query(10, ge=1, le=config.max_k, description=k_doc),
        category: list[str] | None = Query(None, description=category_doc),
    ) -> dict[str, Any]:
        """A user's personalised items: `engine.recommend(user_id, strict=True)`; 404 for a user nobody knows."""
        try:
            matches = engine.recommend(user_id, k, filter=item_filter(category), strict=True)
        except NotFittedError:
            raise UnknownUserError(
                f"user {user_id!r} is not in the training log nor in the recorded events (no model is trained yet)"
            ) from None
        return item_list(matches, engine.catalog.base_dir)

    @router.post("/recommendations", response_model=ItemList, responses=ERRORS, tags=["recommendations"])
    @annotate(body=models.session)
    def session_recommendations(body: Any = Body()) -> dict[str, Any]:
        """Items for an anonymous visitor from what they viewed (oldest first): `engine.recommend(history=...)`."""
        history = [str(i) for i in body.history]
        matches = engine.recommend(None, body.k, history=history, filter=item_filter(body.category))
        return item_list(matches, engine.catalog.base_dir)

    @router.post(
        "/events",
        response_model=Recorded,
        dependencies=[Depends(guard)],
        responses=WRITE_ERRORS,
        tags=["recommendations"],
    )
    @annotate(body=models.events)
    def record_events(body: Any = Body()) -> dict[str, Any]:
        """Record interactions (`engine.log_events`); each user's events join their history at once."""
        events = [e.model_dump(exclude_none=True) for e in body.events]
        recorded = engine.log_events(events)
        persister.wrote()
        return {"recorded": int(recorded)}

    return router


def known_users(engine: Engine) -> list[str]:
    """The trained model's users, then the users only the recorded events know, each once."""
    state = engine.state
    trained = list(state.trained.user_ids) if state.trained is not None else []
    seen = set(trained)
    recorded = [u for u in state.events.users if u not in seen]
    return trained + recorded
