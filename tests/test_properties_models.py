"""Property-based tests of the models: round trips through the converter, and lenient
decoding (extra keys, nulls, unknown enum values, damaged pages).

Hypothesis settings stay modest so the default run stays fast; async scenarios run
each example in its own ``asyncio.run`` so every example starts from a clean loop.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Union, get_args, get_origin, get_type_hints

import attrs
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

import realtimekit_async
import realtimekit_async.webhooks
from realtimekit_async import (
    APIResponse,
    APIResponseValidationError,
    ClientOptions,
    Hooks,
    Paging,
    Recording,
    RecordingPage,
    ValidationError,
)
from realtimekit_async._converter import converter
from realtimekit_async._recordings import _decode

from ._properties import FAST

# -- strategies for the models ------------------------------------------------------------

# Settings and plumbing, not wire models: they hold a yarl URL, an aiohttp.ClientTimeout,
# callables or raw headers that the converter is not meant to (and cannot) map to JSON.
NOT_WIRE_MODELS: frozenset[type] = frozenset({ClientOptions, APIResponse, Hooks})


def _exported_attrs_classes(module: types.ModuleType) -> list[type]:
    found = (getattr(module, name) for name in module.__all__)
    return [obj for obj in found if isinstance(obj, type) and attrs.has(obj)]


MODELS: list[type] = sorted(
    {
        *_exported_attrs_classes(realtimekit_async),
        *_exported_attrs_classes(realtimekit_async.webhooks),
    }
    - NOT_WIRE_MODELS,
    key=lambda cls: cls.__name__,
)

# Aware datetimes at the API's precision (milliseconds), in assorted fixed offsets.
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_ms_datetimes = st.builds(
    lambda naive, tz: naive.replace(microsecond=naive.microsecond // 1000 * 1000, tzinfo=tz),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)),
    offsets,
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)

# Validated request fields with ranges: generate inside them instead of rejecting.
FIELD_OVERRIDES: dict[str, st.SearchStrategy[Any]] = {
    "max_seconds": st.integers(min_value=60, max_value=86_400),
    "page_no": st.integers(min_value=1, max_value=10**6),
    "per_page": st.integers(min_value=1, max_value=10**4),
    "height": st.integers(min_value=1, max_value=10**4),
    "width": st.integers(min_value=1, max_value=10**4),
    "meeting_id": st.text(min_size=1, max_size=12).filter(str.strip),
    "max_requests": st.integers(min_value=1, max_value=10**6),
    "max_retries": st.integers(min_value=0, max_value=100),
    "period": st.floats(min_value=0.001, max_value=1e6),
}


# Field types with a fixed strategy.
_SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    type(None): st.none(),
    typing.Any: json_values,
    datetime: aware_ms_datetimes,
    bool: st.booleans(),
    int: st.integers(min_value=-(2**40), max_value=2**40),
    float: st.floats(min_value=0, max_value=1e9, allow_nan=False),
    str: st.text(max_size=12),
}


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field type of the models (recursing into nested models)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return st.one_of(*(for_type(arg) for arg in get_args(tp)))
    scalar = _SCALARS.get(tp)
    if scalar is not None:
        return scalar
    if origin is tuple:
        item, _ellipsis = get_args(tp)
        return st.lists(for_type(item), max_size=3).map(tuple)
    if origin in (Mapping, dict) or origin is typing.Mapping:
        key, value = get_args(tp)
        return st.dictionaries(for_type(key), for_type(value), max_size=3)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and attrs.has(tp):
        return model_strategy(tp)
    raise NotImplementedError(f"no strategy for {tp!r}")


_STRATEGIES: dict[type, st.SearchStrategy[Any]] = {}


def _construct(cls: type, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except ValidationError:
        reject()  # e.g. start_time after end_time; rare with the overrides above


def model_strategy(cls: type) -> st.SearchStrategy[Any]:
    """``st.builds`` over every init field of ``cls``, defaulted fields included."""
    if cls not in _STRATEGIES:
        _STRATEGIES[cls] = st.deferred(lambda: _build_strategy(cls))
    return _STRATEGIES[cls]


def _build_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = get_type_hints(cls)
    fields = {}
    for field in attrs.fields(cls):
        if not field.init:
            continue
        hint = hints[field.name]
        if field.name in FIELD_OVERRIDES:
            strategy = FIELD_OVERRIDES[field.name]
            if type(None) in get_args(hint):
                strategy = st.none() | strategy
        else:
            strategy = for_type(hint)
        if field.default is not attrs.NOTHING:
            # Leave some fields unset so "omitted because default" is covered too.
            strategy = st.one_of(st.just(_default_of(field)), strategy)
        fields[field.name] = strategy
    return st.fixed_dictionaries(fields).map(lambda kwargs: _construct(cls, kwargs))


def _default_of(field: attrs.Attribute[Any]) -> Any:
    default: Any = field.default
    factory = getattr(default, "factory", None)  # an attrs.Factory
    return factory() if callable(factory) else default


def test_every_exported_model_is_covered() -> None:
    # A new exported attrs class lands in MODELS automatically; this pins the floor.
    names = {cls.__name__ for cls in MODELS}
    assert {"Recording", "RecordingPage", "StorageConfig", "StartRecordingParams"} <= names
    assert {"RecordingStatusUpdate", "WebhookRecording", "GenericEvent", "TrackDownload"} <= names
    for cls in MODELS:
        assert model_strategy(cls) is not None


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
@FAST
@given(data=st.data())
def test_model_round_trips_through_the_converter(cls: type, data: st.DataObject) -> None:
    value = data.draw(model_strategy(cls))
    raw = converter.unstructure(value)
    assert converter.structure(raw, cls) == value


# -- lenient decoding ---------------------------------------------------------------------

recordings = model_strategy(Recording)
unknown_words = st.text(
    alphabet=st.characters(min_codepoint=ord("A"), max_codepoint=ord("Z")), min_size=1, max_size=10
)


def _walk_dicts(doc: Any) -> list[dict[str, Any]]:
    """Every JSON object inside ``doc``, outermost first."""
    found: list[dict[str, Any]] = []
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


@FAST
@given(
    rec=recordings,
    extra=st.lists(st.tuples(st.text(min_size=1, max_size=8), json_values), max_size=6),
    data=st.data(),
)
def test_extra_keys_anywhere_are_ignored(
    rec: Recording, extra: list[tuple[str, Any]], data: st.DataObject
) -> None:
    doc = converter.unstructure(rec)
    objects = _walk_dicts(doc)
    for key, value in extra:
        target = data.draw(st.sampled_from(objects))
        # Pretend it is news from the server: "x-" keeps it clear of real field names.
        target[f"x-{key}"] = value
    assert converter.structure(doc, Recording) == rec


OPTIONAL_RECORDING_KEYS = [
    f.name for f in attrs.fields(Recording) if f.default is None and f.name != "id"
]


@FAST
@given(rec=recordings, nulls=st.sets(st.sampled_from(OPTIONAL_RECORDING_KEYS)))
def test_null_in_any_optional_field_decodes_as_none(rec: Recording, nulls: set[str]) -> None:
    doc = converter.unstructure(rec)
    for key in nulls:
        doc[key] = None
    decoded = converter.structure(doc, Recording)
    cleared: dict[str, Any] = dict.fromkeys(nulls)
    assert attrs.evolve(rec, **cleared) == decoded


# Where an enum sits in a recording's JSON, as key paths.
ENUM_PATHS: list[tuple[str, ...]] = [
    ("status",),
    ("meeting", "status"),
    ("start_reason", "reason"),
    ("start_reason", "caller", "type"),
    ("stop_reason", "reason"),
    ("stop_reason", "caller", "type"),
    ("storage_config", "type"),
    ("storage_config", "auth_method"),
]


@FAST
@given(
    rec=recordings,
    changes=st.lists(st.tuples(st.sampled_from(ENUM_PATHS), unknown_words), min_size=1, max_size=4),
)
def test_unknown_enum_values_decode_and_keep_their_string(
    rec: Recording, changes: list[tuple[tuple[str, ...], str]]
) -> None:
    doc = converter.unstructure(rec)
    doc.setdefault("meeting", {"id": "m"})
    applied: dict[tuple[str, ...], str] = {}
    for path, word in changes:
        value = f"NEW_{word}"  # never a documented value
        node = doc
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
        applied[path] = value
    decoded = converter.structure(doc, Recording)
    for path, value in applied.items():
        got: Any = decoded
        for key in path:
            got = getattr(got, key)
        assert got == value
        assert str(got) == value


@FAST
@given(
    recs=st.lists(recordings, max_size=4),
    paging=model_strategy(Paging),
    envelope_extra=st.dictionaries(
        st.text(min_size=1, max_size=6).map("x-".__add__), json_values, max_size=3
    ),
    unknown_status=unknown_words,
)
def test_pages_with_news_in_them_decode(
    recs: list[Recording], paging: Paging, envelope_extra: dict[str, Any], unknown_status: str
) -> None:
    doc = {"success": True, "data": [converter.unstructure(r) for r in recs], **envelope_extra}
    doc["paging"] = {**converter.unstructure(paging), "x-cursor": "abc"}
    for item in doc["data"]:
        item["status"] = f"NEW_{unknown_status}"
        item["meeting"] = {"id": "m", "recording_config": {"any": [1, None]}}
    page = converter.structure(doc, RecordingPage)
    assert [r.id for r in page.data] == [r.id for r in recs]
    assert all(r.status == f"NEW_{unknown_status}" for r in page.data)
    assert page.paging == paging


def _decode_error(envelope: dict[str, Any], cls: type) -> APIResponseValidationError | None:
    """What the client path makes of a payload: ``None`` if it decodes, else its error."""
    try:
        _decode(envelope, cls, method="GET", path="/recordings", status=200, body=b"{}")
    except APIResponseValidationError as exc:
        return exc
    return None


@FAST
@given(
    rec=recordings,
    data=st.data(),
    damage=st.lists(json_values, min_size=1, max_size=4),
)
def test_any_damage_is_decoded_or_a_response_validation_error(
    rec: Recording, data: st.DataObject, damage: list[Any]
) -> None:
    """Wrong types and nulls in required fields: never a crash, at worst the SDK's error."""
    doc: Any = converter.unstructure(rec)
    for value in damage:
        objects = _walk_dicts(doc)
        target = data.draw(st.sampled_from(objects))
        key = data.draw(st.sampled_from(sorted(target)) if target else st.just("id"))
        target[key] = value
    doc = data.draw(st.sampled_from([doc, [doc], None, "text"]))  # sometimes not even an object
    for cls, envelope in (
        (Recording, {"data": doc}),
        (RecordingPage, {"data": [doc], "paging": {}}),
    ):
        error = _decode_error(envelope, cls)
        if error is not None:
            assert error.status == 200
            assert cls.__name__ in str(error)
