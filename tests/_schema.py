"""The published Recordings schema as the tests' reference, compiled once.

``tests/schema/recordings.json`` is a copy of the project's
``shared/openapi/recordings.json`` (Cloudflare's published OpenAPI 3.0.3 schema
for the six Recordings operations, 2026-07-27), kept in the repository because
users' clones have no ``shared/``. Validation uses jsonschema-rs (JSON Schema
2020-12 with formats checked: ``uuid``, ``date-time``, ``uri``): every answer
of every emulator in the suite goes through it, and it costs about 0.2 ms for
a page of 100 recordings where pure-Python validators took 75 ms. An OpenAPI
3.0 schema object is JSON Schema but for ``nullable``, which :func:`_as_json_schema`
turns into ``"null"`` in ``type`` (and ``enum``); ``readOnly``/``writeOnly`` stay
annotations.

Two uses: every answer any emulator in the suite gives is checked by
:func:`answer_problems` (wired in by ``conftest.py``), and the request test
checks what the SDK sends with :func:`request_problems`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import jsonschema_rs

SCHEMA_PATH: Final = Path(__file__).parent / "schema" / "recordings.json"

#: The emulator's route names and the schema's operation for each.
OPERATIONS: Final = {
    "list_recordings": ("get", "/accounts/{account_id}/realtime/kit/{app_id}/recordings"),
    "start_recording": ("post", "/accounts/{account_id}/realtime/kit/{app_id}/recordings"),
    "start_track_recording": (
        "post",
        "/accounts/{account_id}/realtime/kit/{app_id}/recordings/track",
    ),
    "get_active_recording": (
        "get",
        "/accounts/{account_id}/realtime/kit/{app_id}/recordings/active-recording/{meeting_id}",
    ),
    "get_recording": (
        "get",
        "/accounts/{account_id}/realtime/kit/{app_id}/recordings/{recording_id}",
    ),
    "control_recording": (
        "put",
        "/accounts/{account_id}/realtime/kit/{app_id}/recordings/{recording_id}",
    ),
}


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by its target (the schema has no cycles)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part]
            return _resolve(target, root)
        return {key: _resolve(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, root) for value in node]
    return node


def _as_json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema object as JSON Schema: ``nullable: true`` admits ``null``."""
    if isinstance(node, list):
        return [_as_json_schema(value) for value in node]
    if not isinstance(node, dict):
        return node
    out = {key: _as_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@attrs.frozen
class Operation:
    """One operation's compiled validators."""

    responses: Mapping[int, Any]
    body: Any
    parameters: Sequence[Mapping[str, Any]]


@functools.cache
def spec() -> dict[str, Any]:
    """The schema with every reference resolved."""
    raw = json.loads(SCHEMA_PATH.read_text())
    resolved: dict[str, Any] = _resolve(raw, raw)
    return resolved


def _compile(schema: Any) -> Any:
    return _compile_text(json.dumps(schema, sort_keys=True))


@functools.cache
def _compile_text(schema: str) -> Any:
    # Compiled once per distinct schema (parameters repeat across operations).
    return jsonschema_rs.Draft202012Validator(
        _as_json_schema(json.loads(schema)), validate_formats=True
    )


@functools.cache
def operation(route: str) -> Operation:
    """The validators of the operation behind the emulator route ``route`` (KeyError if none)."""
    method, path = OPERATIONS[route]
    op = spec()["paths"][path][method]
    responses = {
        int(status): _compile(answer["content"]["application/json"]["schema"])
        for status, answer in op["responses"].items()
    }
    body = op.get("requestBody")
    body_validator = _compile(body["content"]["application/json"]["schema"]) if body else None
    return Operation(responses, body_validator, op.get("parameters", []))


@functools.cache
def error_validator() -> Any:
    """The RealtimeKit error body (``realtimekit_GenericErrorResponse``)."""
    schema = spec()["components"]["schemas"]["realtimekit_GenericErrorResponse"]
    return _compile(schema)


def _messages(validator: Any, doc: Any, *, tolerate: frozenset[str] = frozenset()) -> list[str]:
    problems = []
    for error in validator.iter_errors(doc):
        path = "/".join(str(p) for p in error.instance_path)
        if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Format) and path in tolerate:
            continue
        problems.append(f"{path or '(root)'}: {error.message}")
    return problems


def _tolerated(route: str, doc: Any) -> frozenset[str]:
    # Tests may start recordings for short meeting ids ("m1"): the emulator does not
    # enforce the request's uuid format, and its answers echo those ids. Only the
    # format of those echoed ids is let pass; everything the emulator makes is checked.
    if route != "list_recordings" or not isinstance(doc, dict):
        return frozenset()
    items = doc.get("data")
    if not isinstance(items, list):
        return frozenset()
    return frozenset(f"data/{i}/meeting/id" for i in range(len(items)))


def answer_problems(
    route: str, status: int, body: bytes, *, start_status: int = 200, track_shape: str = "current"
) -> list[str]:
    """Where an emulator answer departs from the schema (empty: it conforms).

    2xx answers must have the documented status and body; RealtimeKit-shaped
    errors must be the documented error body. The seed's behaviours a test
    configures on purpose (``start_status``, a legacy ``track_shape``) are let
    pass. Answers in the Cloudflare edge shape (401, 429, 503) and proxies'
    HTML are not the Recordings API's and are not checked.
    """
    if route not in OPERATIONS:
        return []
    try:
        doc = json.loads(body)
    except ValueError:
        return [] if status >= 500 else [f"HTTP {status}: body is not JSON"]
    if 200 <= status < 300:
        allowed = start_status if route == "start_recording" else 200
        problems = [] if status == allowed else [f"HTTP {status}: the schema documents 200"]
        if route == "start_track_recording" and track_shape != "current":
            return problems
        op = operation(route)
        return problems + _messages(op.responses[200], doc, tolerate=_tolerated(route, doc))
    if isinstance(doc, dict) and "error" in doc:
        return _messages(error_validator(), doc)
    return []


def _coerce(value: str, schema: Mapping[str, Any]) -> Any:
    """A query string value read as the parameter's schema type says."""
    kind = schema.get("type")
    if kind in ("number", "integer"):
        try:
            number = float(value)
        except ValueError:
            return value
        if kind == "integer" and math.isfinite(number) and number.is_integer():
            return int(number)
        return number
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


def request_problems(
    route: str,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: Any,
) -> list[str]:
    """Where a request departs from the schema's parameters and request body."""
    op = operation(route)
    problems: list[str] = []
    known = set()
    for param in op.parameters:
        name, where, schema = param["name"], param["in"], param["schema"]
        known.add((where, name))
        validator = _compile(schema)
        if where == "path":
            values: list[Any] = [path_params[name]] if name in path_params else []
        else:
            raw = [v for k, v in query if k == name]
            if schema.get("type") == "array":
                values = [[_coerce(v, schema["items"]) for v in raw]] if raw else []
            else:
                if len(raw) > 1:
                    problems.append(f"query {name}: sent {len(raw)} times")
                values = [_coerce(v, schema) for v in raw]
        if param.get("required") and not values:
            problems.append(f"{where} {name}: required, not sent")
        for value in values:
            problems += [f"{where} {name}: {m}" for m in _messages(validator, value)]
    problems += [
        f"query {k}: not a documented parameter" for k, _ in query if ("query", k) not in known
    ]
    if op.body is None:
        if body is not None:
            problems.append("body: the operation documents none")
    elif body is None:
        problems.append("body: required, not sent")
    else:
        problems += [f"body {m}" for m in _messages(op.body, body)]
    return problems
