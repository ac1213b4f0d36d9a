"""The JSON API's OpenAPI 3.1 document: hand-written, with the code's limits and names filled in.

openapi.json beside this module is the document with `$NAME` tokens (upper case) where a value
belongs to the code: the list sizes, the algorithm names, the states. A string that is only a
token becomes the value itself (a number or a list); a token inside a sentence becomes text.
So the limits are stated once, in the code, and the document cannot drift from them;
tests/test_openapi.py checks the paths and methods against the app's routes.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from app.engine import (
    DEFAULT_K,
    DEFAULT_N,
    MAX_K,
    MAX_MEMBERS,
    MAX_N,
    MAX_NAME,
    MAX_NIGHT_RATINGS,
    MAX_RATINGS,
    Availability,
    Because,
    Service,
    State,
)
from app.web.params import EARLIEST_YEAR, LATEST_YEAR

# Upper case only: "$ref" and runtime expressions such as "$response.body#/user_id" stay.
_TOKEN = re.compile(r"\$([A-Z][A-Z_]*)")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@functools.cache
def template() -> dict[str, Any]:
    """The document as written, tokens and all (read once)."""
    text = resources.files(__package__).joinpath("openapi.json").read_text(encoding="utf-8")
    found: dict[str, Any] = json.loads(text)
    return found


@functools.cache
def package_version() -> str:
    """The project's version: installed metadata, else pyproject.toml beside the app package."""
    try:
        return metadata.version("movierec")
    except metadata.PackageNotFoundError:
        pass
    # The container runs the sources with the dependencies installed, not the package.
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        with pyproject.open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0.0.0"


def values(service: Service, max_body_bytes: int) -> dict[str, object]:
    """What each token stands for, from the code and the running service."""
    return {
        "VERSION": package_version(),
        "MAX_N": MAX_N,
        "MAX_K": MAX_K,
        "DEFAULT_N": DEFAULT_N,
        "DEFAULT_K": DEFAULT_K,
        "MAX_RATINGS": MAX_RATINGS,
        "MAX_BODY_KIB": max_body_bytes // 1024,
        "EARLIEST_YEAR": EARLIEST_YEAR,
        "LATEST_YEAR": LATEST_YEAR,
        "ALGORITHMS": [algorithm.name for algorithm in service.algorithms()],
        "AVAILABILITIES": [member.value for member in Availability],
        "STATES": [member.value for member in State],
        "REASON_KINDS": list(typing.get_args(typing.get_type_hints(Because)["kind"])),
        "MAX_MEMBERS": MAX_MEMBERS,
        "MAX_NAME": MAX_NAME,
        "MAX_NIGHT_RATINGS": MAX_NIGHT_RATINGS,
        "GROUP_STRATEGIES": [strategy.name for strategy in service.group_strategies()],
    }


def document(values: Mapping[str, object], genres: Sequence[str] | None = None) -> dict[str, Any]:
    """The document with every token replaced; `genres`, once known, become the genre enum.

    KeyError names a token without a value, so a typo fails the tests rather than being served.
    """
    filled: dict[str, Any] = _fill(copy.deepcopy(template()), values)
    if genres is not None:
        filled["components"]["parameters"]["Genre"]["schema"]["enum"] = list(genres)
    return filled


def _fill(node: Any, values: Mapping[str, object]) -> Any:
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, str) and "$" in node:
        whole = _TOKEN.fullmatch(node)
        if whole:
            return values[whole[1]]
        return _TOKEN.sub(lambda token: str(values[token[1]]), node)
    return node


@dataclass(frozen=True)
class Parameter:
    """One parameter as the reference page lists it."""

    name: str
    location: str
    required: bool
    type: str
    description: str


@dataclass(frozen=True)
class Answer:
    """One documented response: status, what it means, and an example body."""

    status: str
    description: str
    schema: str
    examples: list[tuple[str, str]]


@dataclass(frozen=True)
class Operation:
    """One method on one path, with $refs resolved, for the reference page."""

    method: str
    path: str
    anchor: str
    summary: str
    description: str
    tag: str
    parameters: list[Parameter]
    body: Answer | None
    answers: list[Answer]


def operations(doc: Mapping[str, Any]) -> list[Operation]:
    """Every operation in the document, in the order written."""
    found = []
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method not in item:
                continue
            op = item[method]
            body = op.get("requestBody")
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    anchor=op["operationId"],
                    summary=op.get("summary", ""),
                    description=op.get("description", ""),
                    tag=(op.get("tags") or [""])[0],
                    parameters=[_parameter(doc, p) for p in op.get("parameters", [])],
                    body=_answer(doc, "body", resolve(doc, body)) if body else None,
                    answers=[
                        _answer(doc, status, resolve(doc, answer))
                        for status, answer in op["responses"].items()
                    ],
                )
            )
    return found


def resolve(doc: Mapping[str, Any], node: Any) -> Any:
    """Follow a local `$ref` ("#/components/...") to what it names."""
    while isinstance(node, Mapping) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def type_of(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    """A schema in a few words: "integer, 1 to 50, default 5", "one of: a, b", "Rating[]"."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        target = resolve(doc, schema)
        return type_of(doc, target) if "enum" in target else name
    if "allOf" in schema:
        return " and ".join(type_of(doc, part) for part in schema["allOf"] if "$ref" in part)
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return "one of: " + ", ".join(str(value) for value in schema["enum"])
    kinds = schema.get("type", "any")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    words = " or ".join(
        f"{type_of(doc, schema.get('items', {}))}[]" if kind == "array" else kind for kind in kinds
    )
    if "minimum" in schema and "maximum" in schema:
        words += f", {schema['minimum']} to {schema['maximum']}"
    elif "minimum" in schema:
        words += f", at least {schema['minimum']}"
    if "multipleOf" in schema:
        words += f", in steps of {schema['multipleOf']}"
    if "maxItems" in schema:
        words += f", at most {schema['maxItems']}"
    if "default" in schema:
        words += f", default {schema['default']}"
    return words


def _parameter(doc: Mapping[str, Any], node: Mapping[str, Any]) -> Parameter:
    found = resolve(doc, node)
    return Parameter(
        name=found["name"],
        location=found["in"],
        required=bool(found.get("required")),
        type=type_of(doc, found["schema"]),
        description=found.get("description", ""),
    )


def _answer(doc: Mapping[str, Any], status: str, node: Mapping[str, Any]) -> Answer:
    content = node.get("content", {})
    media: Mapping[str, Any] = next(iter(content.values()), {})
    examples = [
        (example.get("summary", name), json.dumps(example["value"], indent=2))
        for name, example in media.get("examples", {}).items()
    ]
    schema = type_of(doc, media["schema"]) if "schema" in media else ""
    media_type = next(iter(content), "")
    if media_type and media_type != "application/json":
        schema = f"{media_type} {schema}".strip()
    return Answer(status, node.get("description", ""), schema, examples)


@dataclass(frozen=True)
class Field:
    """One member of an object schema."""

    name: str
    type: str
    required: bool
    description: str


@dataclass(frozen=True)
class Schema:
    """One named schema of the document, for the reference page."""

    name: str
    description: str
    type: str
    fields: list[Field]


def schemas(doc: Mapping[str, Any]) -> list[Schema]:
    """The document's named schemas with their members (an object's one level deep)."""
    found = []
    for name, schema in doc["components"]["schemas"].items():
        required = set(schema.get("required", []))
        fields = [
            Field(key, type_of(doc, member), key in required, member.get("description", ""))
            for key, member in schema.get("properties", {}).items()
        ]
        found.append(Schema(name, schema.get("description", ""), type_of(doc, schema), fields))
    return found
