"""The OpenAPI document: valid, in step with the routes and the code's limits, and served."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from quart import Quart

from app.engine import MAX_K, MAX_N, MAX_RATINGS
from tests.conftest import one, parse, text_of, texts

if TYPE_CHECKING:  # pytest would take a Test* class in the module for tests to collect
    from quart.typing import TestClientProtocol

# The methods a route gets without declaring them.
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
# What the document covers besides the /api/ routes: the probes the load balancer uses.
PROBES = {"/healthz", "/readyz"}


async def served(client: TestClientProtocol) -> dict[str, Any]:
    """The document as /api/openapi.json serves it."""
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    found: dict[str, Any] = await response.get_json()
    return found


def routes(app: Quart) -> dict[str, set[str]]:
    """The API's paths in OpenAPI form ("<user_id>" as "{user_id}") and their methods."""
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<", "{").replace(">", "}")
        if path.startswith("/api/") or path in PROBES:
            found.setdefault(path, set()).update((rule.methods or set()) - IMPLICIT_METHODS)
    return found


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for `schema`, whose "#/components/..." references resolve in `doc`."""
    # The document's other members are unknown keywords to JSON Schema, so they are ignored.
    return jsonschema.Draft202012Validator({**doc, **schema})


def media_examples(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """(where, schema, value) for every example of a request or response body."""
    found = []
    bodies: list[tuple[str, dict[str, Any]]] = list(doc["components"]["responses"].items())
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                bodies.append((f"{method} {path} body", operation["requestBody"]))
            for status, answer in operation["responses"].items():
                bodies.append((f"{method} {path} {status}", answer))
    for where, body in bodies:
        for media in body.get("content", {}).values():
            for name, example in media.get("examples", {}).items():
                found.append((f"{where} {name}", media["schema"], example["value"]))
    return found


async def test_the_document_is_valid_openapi_3_1(client: TestClientProtocol) -> None:
    doc = await served(client)
    assert doc["openapi"].startswith("3.1.")
    validate(doc)


async def test_the_document_covers_every_route_and_no_other(
    app: Quart, client: TestClientProtocol
) -> None:
    doc = await served(client)
    documented = {
        path: {method.upper() for method in item if method != "parameters"}
        for path, item in doc["paths"].items()
    }
    assert documented == routes(app)


async def test_limits_and_names_come_from_the_code(client: TestClientProtocol) -> None:
    doc = await served(client)
    components = doc["components"]
    parameters = components["parameters"]
    assert parameters["N"]["schema"]["maximum"] == MAX_N
    assert parameters["K"]["schema"]["maximum"] == MAX_K
    ratings = components["schemas"]["RatingsRequest"]["properties"]["ratings"]
    assert ratings["maxItems"] == MAX_RATINGS
    algorithms = await (await client.get("/api/algorithms")).get_json()
    names = [a["name"] for a in algorithms["algorithms"]]
    assert components["schemas"]["AlgorithmName"]["enum"] == names
    assert "original" in names
    # Once the model is loaded, the genre parameter lists the catalogue's genres.
    assert "Sci-Fi" in parameters["Genre"]["schema"]["enum"]
    # No token is left unfilled ("$ref" and runtime expressions are lower case).
    text = json.dumps(doc)
    assert '"$MAX' not in text and '"$ALGORITHMS"' not in text and "$VERSION" not in text


async def test_every_example_fits_its_schema(client: TestClientProtocol) -> None:
    doc = await served(client)
    examples = media_examples(doc)
    assert len(examples) >= 15
    for where, schema, value in examples:
        errors = [error.message for error in validator(doc, schema).iter_errors(value)]
        assert not errors, f"{where}: {errors}"


async def test_the_schemas_refuse_what_the_server_refuses(client: TestClientProtocol) -> None:
    doc = await served(client)
    request = validator(doc, {"$ref": "#/components/schemas/RatingsRequest"})
    assert request.is_valid({"ratings": [{"movie_id": 1, "rating": 4.5}]})
    for bad in (
        {"ratings": []},
        {"ratings": [{"movie_id": 1, "rating": 4.2}]},
        {"ratings": [{"movie_id": 1, "rating": 5.5}]},
        {"ratings": [{"movie_id": 1}]},
        {"ratings": [{"movie_id": 1, "rating": 4, "extra": 1}]},
        {"ratings": [{"movie_id": 1, "rating": 4}] * 2},
    ):
        assert not request.is_valid(bad), bad
    error = validator(doc, {"$ref": "#/components/schemas/Error"})
    assert error.is_valid({"error": {"status": 400, "message": "No.", "field": "n"}})
    assert not error.is_valid({"error": {"status": 400}})


async def test_the_reference_page_is_rendered_from_the_document(
    client: TestClientProtocol,
) -> None:
    doc = await served(client)
    response = await client.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    page = parse(await response.get_data(as_text=True))
    operations = {
        operation["operationId"] for item in doc["paths"].values() for operation in item.values()
    }
    sections = [node.attributes["id"] for node in page.css("section.operation")]
    assert len(sections) == len(operations) and set(sections) == operations
    recommend = one(page, "#recommendForUser")
    assert texts(recommend, ".parameters dt code") == ["user_id", "n", "k", "algorithm"]
    described = dict(
        zip(texts(recommend, ".parameters dt"), texts(recommend, ".parameters dd"), strict=True)
    )
    assert described["n"].startswith(f"query: integer, 1 to {MAX_N}, default 5.")
    # Within the page's Content-Security-Policy: no inline script or style.
    assert all("src" in node.attributes for node in page.css("script"))
    assert not page.css("style") and not page.css("[style]")
    link = one(page, "footer a[href='/api/docs']")
    assert text_of(link)


async def test_a_wrong_method_gets_405_with_allow(client: TestClientProtocol) -> None:
    response = await client.delete("/api/status")
    body = await response.get_json()
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert body["error"]["status"] == 405 and "use GET, HEAD, OPTIONS" in body["error"]["message"]
    page = await client.put("/about")
    assert page.status_code == 405 and "GET" in page.headers["Allow"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        # json.loads recurses once per level; 1,000 levels are 2 KB.
        (b"[" * 1000 + b"]" * 1000, "application/json", 400, "nested too deeply"),
        (
            b'{"ratings": [{"movie_id": 10, "rating": ' + b"9" * 4000 + b"}]}",
            "application/json",
            400,
            "ratings[0].rating must be from 0.5 to 5.0",
        ),
        # Past CPython's 4,300-digit limit for converting text to int.
        (
            b'{"ratings": [{"movie_id": 10, "rating": -' + b"9" * 5000 + b"}]}",
            "application/json",
            400,
            "ratings[0].rating must be from 0.5 to 5.0",
        ),
        (
            b'{"ratings": [{"movie_id": ' + b"1" * 4000 + b', "rating": 4}]}',
            "application/json",
            400,
            "A movie_id of 4,000 digits names no film.",
        ),
        (
            '{"ratings": [{"movie_id": 10, "rating": 4, "x": "é"}]}'.encode("latin-1"),
            "application/json",
            400,
            "not UTF-8",
        ),
        (b'{"ratings": [{"movie_id": 10, "rating": NaN}]}', "application/json", 400, "not valid"),
        (b'{"ratings": []}', "application/json", 400, "at least one rating"),
        (b'{"ratings": [{"movie_id": 10, "rating": 4}]}', "text/plain", 415, "application/json"),
        (
            b"ratings=10:4",
            "application/x-www-form-urlencoded",
            415,
            "Content-Type: application/json",
        ),
    ],
)
async def test_malformed_bodies_get_4xx_with_a_reason(
    client: TestClientProtocol, body: bytes, content_type: str, status: int, message: str
) -> None:
    response = await client.post(
        "/api/recommendations", data=body, headers={"Content-Type": content_type}
    )
    answer = await response.get_json()
    assert response.status_code == status, answer
    assert answer["error"]["status"] == status and message in answer["error"]["message"]
    assert len(answer["error"]["message"]) < 200


async def test_a_whole_number_written_with_a_point_is_an_integer(
    client: TestClientProtocol,
) -> None:
    response = await client.post(
        "/api/recommendations", json={"ratings": [{"movie_id": 10.0, "rating": 5}]}
    )
    answer = await response.get_json()
    assert response.status_code == 200, answer
    assert answer["ratings"] == [{"movie_id": 10, "rating": 5.0}]


async def test_the_document_is_served_while_the_model_loads(app: Quart) -> None:
    # Not started: no model yet, so no genres to list; the rest is there already.
    response = await app.test_client().get("/api/openapi.json")
    doc = await response.get_json()
    assert response.status_code == 200
    assert "enum" not in doc["components"]["parameters"]["Genre"]["schema"]
    assert doc["components"]["parameters"]["N"]["schema"]["maximum"] == MAX_N
    validate(doc)
