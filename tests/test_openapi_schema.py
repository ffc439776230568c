"""Property-based test of the HTTP API from its own OpenAPI spec (schemathesis): no request gets a 5xx.

Schemathesis reads /openapi.json and generates requests for every operation, both
ones the schema allows and ones that break it (wrong types, missing fields, odd
strings and ids), and sends them to the ASGI app in process. Whatever it sends, the
answer must not be a server error; an error answer must be JSON {"error": ...}, and
a success must match the response schema the spec declares. Writes are open (no API
key), so PUT/DELETE /items, POST /events and POST /save run too, on a throwaway model
folder. `SHOPVEC_SCHEMA_EXAMPLES` sets the examples per operation and mode (default
10: about 25 s on two busy cores).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from test_service import Shop

from service.app import create_app
from service.config import ServiceConfig

EXAMPLES = int(os.environ.get("SHOPVEC_SCHEMA_EXAMPLES", "10"))
UNBREAKABLE = {
    "GET /health", "POST /save", "GET /items/{item_id}/image", "GET /items/{item_id}", "DELETE /items/{item_id}"
}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> schemathesis.BaseSchema:
    shop = Shop(Path(tmp_path_factory.mktemp("schema")))
    app = create_app(shop.engine, shop.folder, ServiceConfig(save_every_s=0, max_k=20))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def check(case: schemathesis.Case) -> None:
    """Send one generated request; fail on a 5xx, an error that is not {"error"}, or a success off its schema."""
    response = case.call()
    where = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.200}"
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text}"
    if response.status_code >= 400 and response.headers.get("content-type", [""])[0].startswith("application/json"):
        assert list(response.json()) == ["error"], f"{where} -> {response.text}"
    checks = [not_a_server_error] + ([response_schema_conformance] if response.status_code < 300 else [])
    case.validate_response(response, checks=checks)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(api_schema: schemathesis.BaseSchema, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 14, [op.label for op in operations]
    unbreakable: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def run(case: schemathesis.Case) -> None:
            check(case)

        try:
            run()
        except Unsatisfiable:  # nothing to break: an operation without parameters or body (GET /health)
            assert mode == GenerationMode.NEGATIVE, operation.label
            unbreakable.append(operation.label)
    # Only operations whose inputs are a bare string path parameter, or nothing, have no invalid form.
    assert set(unbreakable) <= UNBREAKABLE, unbreakable
