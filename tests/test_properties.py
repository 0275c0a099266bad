"""Property-based tests: model round trips, lenient decoding, paging under churn, retries,
and cancellation at random points.

Hypothesis settings stay modest so the default run stays fast; async scenarios run
each example in its own ``asyncio.run`` so every example starts from a clean loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any, Union, get_args, get_origin, get_type_hints

import attrs
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import realtimekit_async
import realtimekit_async.webhooks
from realtimekit_async import (
    APIConnectionError,
    APIError,
    APIResponse,
    APIResponseValidationError,
    APIStatusError,
    ClientOptions,
    Hooks,
    Paging,
    RealtimeKit,
    Recording,
    RecordingPage,
    RecordingStatus,
    RetryPolicy,
    ValidationError,
)
from realtimekit_async._converter import converter
from realtimekit_async._export_plan import LOCK_NAME, PART_STATE_SUFFIX, PART_SUFFIX
from realtimekit_async._pagination import (
    MAX_REPAIR_PASSES,
    MAX_REPEATED_PAGES,
    RecordingPaginator,
)
from realtimekit_async._recordings import _decode
from realtimekit_async._sansio import RETRYABLE_STATUSES, Failure, retry_delay
from realtimekit_async.emulator import Emulator, FaultConfig
from realtimekit_async.export import MANIFEST_NAME, ExportProgress, export_recordings

from .conftest import emulator_client

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ASYNC = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

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


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field type of the models (recursing into nested models)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return st.one_of(*(for_type(arg) for arg in get_args(tp)))
    if tp is type(None):
        return st.none()
    if tp is typing.Any:
        return json_values
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
    if tp is datetime:
        return aware_ms_datetimes
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(min_value=-(2**40), max_value=2**40)
    if tp is float:
        return st.floats(min_value=0, max_value=1e9, allow_nan=False)
    if tp is str:
        return st.text(max_size=12)
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


# -- the paginator under churn --------------------------------------------------------------


# A recording always has an invocation time and a file name.
INVOKED = datetime(2025, 1, 1, tzinfo=UTC)


def _rec(item: int) -> Recording:
    return Recording(str(item), RecordingStatus.UPLOADED, INVOKED, "r.mp4")


class ChurningServer:
    """An offset-paged list that changes between (and during) page requests.

    ``mutate(server, page_no)`` runs when a page is served, right before it is
    cut. ``requested_end`` is the end offset of the furthest page requested so
    far (counted when the request arrives); ``cursor`` the start offset of the
    lowest page not served yet.
    """

    def __init__(
        self,
        size: int,
        per_page: int,
        mutate: Callable[[ChurningServer, int], None],
        delay: Callable[[], int],
        *,
        in_order: bool,
    ) -> None:
        self.items = list(range(size))
        self.next_id = size
        self.per_page = per_page
        self.mutate = mutate
        self.delay = delay
        self.in_order = in_order
        self.requested_end = 0
        self.served: set[int] = set()
        self.deleted: set[int] = set()
        self.inserted: set[int] = set()
        self.fetches = 0
        self.log: list[tuple[int, int, list[int]]] = []  # (page, total, ids) as served
        self._turn = asyncio.Event()

    @property
    def cursor(self) -> int:
        page = 1
        while page in self.served:
            page += 1
        return (page - 1) * self.per_page

    def insert(self, offset: int) -> None:
        self.items.insert(offset, self.next_id)
        self.inserted.add(self.next_id)
        self.next_id += 1

    def delete(self, offset: int) -> None:
        self.deleted.add(self.items.pop(offset))

    async def fetch(self, page_no: int) -> RecordingPage:
        self.fetches += 1
        assert self.fetches < 10_000, "the walk does not terminate"
        self.requested_end = max(self.requested_end, page_no * self.per_page)
        for _ in range(self.delay()):
            await asyncio.sleep(0)  # lets prefetched requests be served out of order
        if self.in_order:
            while page_no != self.cursor // self.per_page + 1:
                self._turn.clear()
                await self._turn.wait()
        self.mutate(self, page_no)
        start = (page_no - 1) * self.per_page
        chunk = self.items[start : start + self.per_page]
        self.log.append((page_no, len(self.items), list(chunk)))
        self.served.add(page_no)
        self._turn.set()
        return RecordingPage(
            data=tuple(_rec(i) for i in chunk),
            paging=Paging(
                start_offset=start + 1, end_offset=start + len(chunk), total_count=len(self.items)
            ),
        )


def _shuffled(
    size: int, per_page: int, mutate: Callable[[ChurningServer, int], None], data: st.DataObject
) -> ChurningServer:
    """A churning server whose answers come back in a drawn, shuffled order."""
    return ChurningServer(
        size,
        per_page,
        mutate,
        lambda: data.draw(st.integers(min_value=0, max_value=4), label="delay"),
        in_order=False,
    )


def _walk(server: ChurningServer, prefetch: int) -> list[str]:
    async def main() -> list[str]:
        paginator = RecordingPaginator(
            server.fetch, page_no=1, per_page=server.per_page, prefetch=prefetch
        )
        async with asyncio.timeout(10):
            return [r.id async for r in paginator]

    return asyncio.run(main())


def _check_walk(server: ChurningServer, initial: int, got: list[str]) -> None:
    assert len(got) == len(set(got)), "an id was yielded twice"
    assert {int(i) for i in got} <= set(range(initial)) | server.inserted
    survivors = set(range(initial)) - server.deleted
    missing = survivors - {int(i) for i in got}
    assert not missing, (
        f"items present for the whole walk were not yielded: {sorted(missing)}; "
        f"served (page, total, ids): {server.log}; yielded: {got}"
    )


@FAST
@given(
    size=st.integers(min_value=0, max_value=120),
    per_page=st.integers(min_value=1, max_value=12),
    prefetch=st.integers(min_value=1, max_value=8),
    data=st.data(),
)
def test_walk_is_complete_when_churn_stays_beyond_the_requested_pages(
    size: int, per_page: int, prefetch: int, data: st.DataObject
) -> None:
    """Model A: inserts and deletes only at or after the end of the furthest page requested.

    Holds for any serving order of prefetched pages: no requested page's
    contents can move, so nothing is skipped, and nothing is yielded twice.
    (Appending to the end of an oldest-first listing is the everyday case.)
    """

    def mutate(server: ChurningServer, _page_no: int) -> None:
        for _ in range(data.draw(st.integers(min_value=0, max_value=3), label="changes")):
            low, high = server.requested_end, len(server.items)
            if data.draw(st.booleans(), label="insert?"):
                server.insert(data.draw(st.integers(min_value=min(low, high), max_value=high)))
            elif low < high:
                server.delete(data.draw(st.integers(min_value=low, max_value=high - 1)))

    server = _shuffled(size, per_page, mutate, data)
    _check_walk(server, size, _walk(server, prefetch))


@FAST
@given(
    size=st.integers(min_value=0, max_value=120),
    per_page=st.integers(min_value=1, max_value=12),
    prefetch=st.integers(min_value=1, max_value=8),
    events=st.integers(min_value=0, max_value=MAX_REPAIR_PASSES),
    data=st.data(),
)
def test_walk_is_complete_when_the_list_changes_a_few_times(
    size: int, per_page: int, prefetch: int, events: int, data: st.DataObject
) -> None:
    """Model B: up to MAX_REPAIR_PASSES single inserts or deletes, anywhere in the list,
    at any moment, with prefetched pages answered in any order.

    Each change moves the total, so the pass that saw it is followed by a repair
    pass in page order from just before the first page that saw it; with no more
    changes than repair passes, some pass runs clean and recovers what shifted.
    """
    left = events

    def mutate(server: ChurningServer, _page_no: int) -> None:
        nonlocal left
        if not left or not data.draw(st.booleans(), label="change now?"):
            return
        left -= 1
        high = len(server.items)
        if data.draw(st.booleans(), label="insert?") or not high:
            server.insert(data.draw(st.integers(min_value=0, max_value=high), label="at"))
        else:
            server.delete(data.draw(st.integers(min_value=0, max_value=high - 1), label="at"))

    server = _shuffled(size, per_page, mutate, data)
    _check_walk(server, size, _walk(server, prefetch))


@FAST
@given(
    size=st.integers(min_value=0, max_value=120),
    per_page=st.integers(min_value=1, max_value=12),
    prefetch=st.integers(min_value=1, max_value=8),
    budget=st.integers(min_value=0, max_value=60),
    data=st.data(),
)
def test_walk_ends_and_never_repeats_under_any_churn(
    size: int, per_page: int, prefetch: int, budget: int, data: st.DataObject
) -> None:
    """Any mutations anywhere (a finite number), any serving order: the walk still ends,
    yields no id twice and nothing that never existed. Completeness is not claimed here:
    a list that keeps changing through every repair pass can still hide an item."""
    left = budget

    def mutate(server: ChurningServer, _page_no: int) -> None:
        nonlocal left
        for _ in range(
            min(left, data.draw(st.integers(min_value=0, max_value=5), label="changes"))
        ):
            left -= 1
            high = len(server.items)
            if data.draw(st.booleans(), label="insert?") or not high:
                server.insert(data.draw(st.integers(min_value=0, max_value=high)))
            else:
                server.delete(data.draw(st.integers(min_value=0, max_value=high - 1)))

    server = _shuffled(size, per_page, mutate, data)
    got = _walk(server, prefetch)  # the walk's own timeout (10 s) guards termination
    assert len(got) == len(set(got)), "an id was yielded twice"
    assert {int(i) for i in got} <= set(range(size)) | server.inserted
    # Bounded work: each pass reads at most the pages the largest total calls for,
    # plus a prefetch window and a few pages of repeats.
    pages = -(-(size + budget) // per_page) + 1 + prefetch + MAX_REPEATED_PAGES
    assert server.fetches <= (1 + MAX_REPAIR_PASSES) * pages


def _scripted(
    size: int, per_page: int, script: dict[int, Callable[[ChurningServer], None]]
) -> ChurningServer:
    def mutate(server: ChurningServer, page_no: int) -> None:
        if page_no in script:
            script.pop(page_no)(server)

    return ChurningServer(size, per_page, mutate, lambda: 0, in_order=False)


def test_a_delete_before_the_cursor_is_repaired() -> None:
    # Page 1 is read; then item 0 is deleted: item 10 slides into page 1 and page 2
    # starts at item 11. Page 2's total moved, so a repair pass rereads from page 1.
    server = _scripted(20, 10, {2: lambda s: s.delete(0)})
    got = _walk(server, prefetch=1)
    assert got == [str(i) for i in range(20) if i != 10] + ["10"]


def test_a_page_of_inserts_ahead_of_the_cursor_does_not_end_the_walk() -> None:
    # per_page new items at the front between two reads make page 2 exactly page 1
    # again; the total grew, which explains the repeats, so the walk goes on.
    def burst(server: ChurningServer) -> None:
        for _ in range(10):
            server.insert(0)

    server = _scripted(30, 10, {2: burst})
    got = _walk(server, prefetch=1)
    # Every original item, in order; the ten new ones come from the repair pass.
    assert got[:30] == [str(i) for i in range(30)]
    assert sorted(got[30:], key=int) == [str(i) for i in range(30, 40)]


def test_inserts_while_prefetched_pages_are_answered_out_of_order_are_repaired() -> None:
    # Page 3 is answered before page 2, and one item is inserted at the front in
    # between: item 19 was in page 2's range when page 3 was cut and in page 3's
    # range when page 2 was cut, so neither answer holds it; the repair pass does.
    order: list[int] = []

    async def main() -> list[str]:
        items = list(range(40))
        gate = asyncio.Event()

        async def fetch(page_no: int) -> RecordingPage:
            if page_no == 2 and not gate.is_set():
                await gate.wait()  # answered late
                items.insert(0, 1000)
            chunk = items[(page_no - 1) * 10 : page_no * 10]
            order.append(page_no)
            if page_no == 3:
                gate.set()
            return RecordingPage(
                data=tuple(_rec(i) for i in chunk), paging=Paging(total_count=len(items))
            )

        paginator = RecordingPaginator(fetch, page_no=1, per_page=10, prefetch=4)
        return [r.id async for r in paginator]

    got = asyncio.run(main())
    assert order.index(3) < order.index(2)
    assert sorted(got, key=int) == [str(i) for i in [*range(40), 1000]]
    assert got[-1] == "19"  # recovered last, by the repair pass
    assert len(got) == len(set(got))


def test_limit_a_balanced_change_between_two_answers_can_hide_an_item() -> None:
    # What offset paging cannot see: between reading page 1 and page 2, one item is
    # deleted before the cursor and another added after it. The total does not move,
    # so nothing tells the walk that item 10 slid back into page 1.
    def swap(server: ChurningServer) -> None:
        server.delete(0)
        server.insert(len(server.items))

    server = _scripted(20, 10, {2: swap})
    got = _walk(server, prefetch=1)
    assert "10" not in got
    assert len(got) == len(set(got))


# -- retry decisions ----------------------------------------------------------------------

policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(min_value=0, max_value=20),
    initial_delay=st.floats(min_value=0, max_value=10),
    max_delay=st.floats(min_value=0, max_value=60),
    max_server_delay=st.floats(min_value=0, max_value=600),
)


@FAST
@given(
    policy=policies,
    attempt=st.integers(min_value=0, max_value=30),
    idempotent=st.booleans(),
    status=st.one_of(
        st.none(), st.sampled_from([200, 201, 400, 404, 409, 429, *RETRYABLE_STATUSES])
    ),
    failure=st.one_of(st.none(), st.sampled_from(Failure)),
    server=st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from(["retry-after", "retry-after-ms"]),
            st.floats(min_value=0, max_value=1e5),
        ),
    ),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_retry_decision_for_any_policy(
    policy: RetryPolicy,
    attempt: int,
    idempotent: bool,
    status: int | None,
    failure: Failure | None,
    server: tuple[str, float] | None,
    jitter: float,
) -> None:
    headers = {} if server is None else {server[0]: repr(server[1])}
    given_delay = (
        None if server is None else server[1] / (1000 if server[0] == "retry-after-ms" else 1)
    )
    delay = retry_delay(
        policy,
        attempt,
        idempotent=idempotent,
        status=status,
        failure=failure,
        headers=headers,
        jitter=jitter,
    )
    provably_unprocessed = failure is Failure.CONNECT or status == 429
    maybe_processed = failure is Failure.AFTER_SEND or status in RETRYABLE_STATUSES
    should_retry = (
        attempt < policy.max_retries
        and (provably_unprocessed or (maybe_processed and idempotent))
        and (given_delay is None or given_delay <= policy.max_server_delay)
    )
    assert (delay is not None) == should_retry
    if delay is None:
        return
    # Retried only while attempts remain, for a retryable outcome ...
    assert attempt < policy.max_retries
    assert provably_unprocessed or maybe_processed
    # ... and a call that is not idempotent only if it provably did nothing.
    if not idempotent:
        assert provably_unprocessed
    # The wait: the server's, up to the cap; else backoff within [75 %, 100 %] of its cap.
    if given_delay is not None:
        assert delay == pytest.approx(given_delay)
        assert delay <= policy.max_server_delay
    else:
        ceiling = min(policy.initial_delay * 2.0**attempt, policy.max_delay)
        assert 0.75 * ceiling - 1e-9 <= delay <= ceiling + 1e-9
    assert math.isfinite(delay)
    assert delay >= 0


@FAST
@given(policy=policies, attempt=st.integers(min_value=0, max_value=30))
def test_a_server_delay_over_the_cap_is_never_waited(policy: RetryPolicy, attempt: int) -> None:
    too_long = policy.max_server_delay + 1
    for headers in ({"retry-after": str(too_long)}, {"retry-after-ms": str(too_long * 1000)}):
        assert retry_delay(policy, attempt, idempotent=True, status=429, headers=headers) is None


# Over HTTP against the emulator: which injected fault on a start could have been
# processed, and what the client does about it.
START_OUTCOMES = [
    # (fault, processed by the server, start() succeeds, starts counted)
    ("429", False, True, 1),  # retried: a 429 proves nothing happened
    ("slow", True, True, 1),
    ("500", False, False, 0),  # maybe processed as far as the client knows: not retried
    ("502", False, False, 0),
    ("503", False, False, 0),
    ("html", False, False, 0),
    ("reset", False, False, 0),
    ("truncate", True, False, 1),  # processed, answer lost: must not be retried
]


@pytest.mark.parametrize(("kind", "processed", "succeeds", "starts"), START_OUTCOMES)
async def test_start_is_never_repeated_after_it_could_have_been_processed(
    kind: str, processed: bool, succeeds: bool, starts: int
) -> None:
    faults = FaultConfig(
        first=1, kinds=(kind,), methods=("POST",), retry_after=0.01, slow_seconds=0.01
    )
    async with (
        Emulator(speed=0, faults=faults) as emu,
        emulator_client(emu, retries=5) as client,
    ):
        if succeeds:
            rec = await client.recordings.start("meeting-1")
            assert rec.status is RecordingStatus.INVOKED
        else:
            with pytest.raises((APIConnectionError, APIStatusError)):
                await client.recordings.start("meeting-1")
        assert emu.stats.starts_by_meeting["meeting-1"] == starts
        assert emu.stats.faults[kind] == 1
        if processed and not succeeds:
            # What a careful caller does next: ask, do not start again.
            active = await client.recordings.get_active("meeting-1")
            assert active.status is RecordingStatus.INVOKED


async def test_a_truncated_answer_to_a_read_is_retried() -> None:
    faults = FaultConfig(first=2, kinds=("truncate",))
    async with (
        Emulator(speed=0, recordings=3, faults=faults) as emu,
        emulator_client(emu, retries=3) as client,
    ):
        rid = next(iter(emu.store.recordings))
        assert (await client.recordings.get(rid)).id == rid
        assert emu.stats.faults["truncate"] == 2


# -- cancellation at random points ---------------------------------------------------------


def _client_for(emu: Emulator, **options: Any) -> RealtimeKit:
    return emulator_client(emu, retries=3, **options)


async def _cancel_after(task: asyncio.Task[Any], turns: int, ready: asyncio.Event | None) -> None:
    if ready is not None:
        await ready.wait()
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.fixture
def collect_garbage() -> typing.Iterator[None]:
    """A full collection after the test: an unclosed session or connector found
    there warns (ResourceWarning), and warnings are errors in this suite.
    (Once per test, not per example: a full collection is slow.)"""
    yield
    gc.collect()


def _run_cancel_scenario(scenario: Callable[[], typing.Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


@ASYNC
@given(
    prefetch=st.integers(min_value=1, max_value=8),
    after_items=st.one_of(st.none(), st.integers(min_value=1, max_value=60)),
    turns=st.integers(min_value=0, max_value=40),
    faulty=st.booleans(),
)
@pytest.mark.usefixtures("collect_garbage")
def test_cancelling_a_list_walk_leaves_nothing_behind(
    prefetch: int, after_items: int | None, turns: int, faulty: bool
) -> None:
    async def scenario() -> None:
        faults = (
            FaultConfig(seed=turns, rate=0.2, kinds=("500", "slow", "reset"), slow_seconds=0.01)
            if faulty
            else None
        )
        async with Emulator(recordings=80, speed=0, faults=faults) as emu:
            ready = asyncio.Event() if after_items is not None else None
            sessions: list[Any] = []

            async def walk() -> None:
                async with _client_for(emu) as client:
                    sessions.append(client.session)
                    count = 0
                    try:
                        async for _rec in client.recordings.list(per_page=5, prefetch=prefetch):
                            count += 1
                            if ready is not None and count == after_items:
                                ready.set()
                    except APIError:
                        pass  # faults outlasted the retries: an ending like any other

            task = asyncio.create_task(walk())
            if ready is not None:
                # Whichever comes first: the item count, or the walk ending by itself.
                waiter = asyncio.create_task(ready.wait())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                await asyncio.gather(waiter, return_exceptions=True)
            await _cancel_after(task, turns, None)
            assert all(s.closed for s in sessions)
        await _settle()

    _run_cancel_scenario(scenario)


@ASYNC
@given(turns=st.integers(min_value=0, max_value=60), poll_ms=st.integers(min_value=0, max_value=5))
@pytest.mark.usefixtures("collect_garbage")
def test_cancelling_wait_for_leaves_nothing_behind(turns: int, poll_ms: int) -> None:
    async def scenario() -> None:
        async with Emulator(speed=0) as emu:
            sessions: list[Any] = []

            async def wait() -> None:
                async with _client_for(emu) as client:
                    sessions.append(client.session)
                    rec = await client.recordings.start("meeting-w")
                    await client.recordings.wait_for(
                        rec.id, poll_interval=0.0005 + poll_ms / 1000, max_poll_interval=0.01
                    )

            task = asyncio.create_task(wait())
            await _cancel_after(task, turns, None)
            assert task.cancelled()
            assert all(s.closed for s in sessions)
        await _settle()

    _run_cancel_scenario(scenario)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    turns=st.integers(min_value=0, max_value=300),
    after_events=st.one_of(st.none(), st.integers(min_value=1, max_value=40)),
    concurrency=st.integers(min_value=1, max_value=4),
    faulty=st.booleans(),
)
@pytest.mark.usefixtures("collect_garbage")
def test_cancelling_an_export_leaves_only_complete_files_and_parts(
    turns: int,
    after_events: int | None,
    concurrency: int,
    faulty: bool,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dest = tmp_path_factory.mktemp("export")

    async def scenario() -> None:
        faults = (
            FaultConfig(
                seed=turns,
                rate=0.3,
                kinds=("truncate", "slow", "503"),
                routes="storage",
                slow_seconds=0.005,
            )
            if faulty
            else None
        )
        async with Emulator(
            recordings=40,
            seed=5,
            speed=0,
            bytes_per_second=256,
            url_ttl=90 * 86400.0,
            faults=faults,
        ) as emu:
            sessions: list[Any] = []
            events = 0
            ready = asyncio.Event()

            def progress(_event: ExportProgress) -> None:
                nonlocal events
                events += 1
                if after_events is not None and events >= after_events:
                    ready.set()

            async def export() -> None:
                async with _client_for(emu) as client:
                    sessions.append(client.session)
                    await export_recordings(
                        client, dest, concurrency=concurrency, on_progress=progress
                    )

            task = asyncio.create_task(export())
            if after_events is not None:
                waiter = asyncio.create_task(ready.wait())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                await asyncio.gather(waiter, return_exceptions=True)
            await _cancel_after(task, turns, None)
            assert all(s.closed for s in sessions)
            # Every final file is complete, byte-exact and in the manifest; the rest are .part.
            manifest = dest / MANIFEST_NAME
            entries = {}
            if manifest.exists():
                for line in manifest.read_text().splitlines():
                    entry = json.loads(line)
                    entries[entry["path"]] = entry
            for path in dest.iterdir():
                if path.name in (MANIFEST_NAME, LOCK_NAME) or path.name.endswith(
                    (PART_SUFFIX, PART_STATE_SUFFIX)
                ):
                    continue
                entry = entries.get(path.name)
                assert entry is not None, f"{path.name} is in place but not in the manifest"
                data = path.read_bytes()
                assert (
                    len(data)
                    == entry["bytes"]
                    == emu.file_size(entry["recording_id"], entry["kind"])
                )
                assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        await _settle()

    _run_cancel_scenario(scenario)
