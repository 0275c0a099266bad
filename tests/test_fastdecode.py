"""The generated response hooks (``_fastdecode``) decode exactly as cattrs' own would.

The reference is the SDK's converter built without the fast hooks; both must
return equal objects (same types, leaf by leaf) or raise the same exception
type, for well-formed and malformed documents alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import attrs
import pytest
from cattrs import Converter
from hypothesis import given, settings
from hypothesis import strategies as st

from realtimekit_async import _converter
from realtimekit_async._converter import converter
from realtimekit_async._models import (
    Meeting,
    Paging,
    Recording,
    RecordingPage,
    StartReason,
    StopReason,
    StorageConfig,
)
from realtimekit_async.emulator import Emulator


@pytest.fixture(scope="module")
def reference() -> Iterator[Converter]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_converter, "register_fast_hooks", lambda *args, **kwargs: None)
        yield _converter._make_converter()


def _leaves(value: Any) -> Any:
    """A comparable form that also tells ``1`` from ``True`` and ``1.0``."""
    if attrs.has(type(value)):
        return (
            type(value),
            tuple(_leaves(getattr(value, a.name)) for a in attrs.fields(type(value))),
        )
    if isinstance(value, tuple):
        return (tuple, tuple(_leaves(v) for v in value))
    if isinstance(value, datetime):
        return (datetime, value, value.utcoffset())
    return (type(value), value)


def _same(reference: Converter, doc: Any, cls: type) -> None:
    try:
        expected: Any = reference.structure(doc, cls)
    except Exception as exc:
        with pytest.raises(type(exc)):
            converter.structure(doc, cls)
        return
    assert _leaves(converter.structure(doc, cls)) == _leaves(expected)


def test_hooks_are_generated() -> None:
    hook = converter.get_structure_hook(Recording)
    assert hook.__code__.co_filename.startswith("<realtimekit_async generated structure")


# -- arbitrary documents ----------------------------------------------------------------

_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_timestamps = st.sampled_from(
    [
        "2025-01-02T03:04:05.678Z",
        "2025-01-02T03:04:05.678Z",
        "2025-01-02T03:04:05Z",
        "2025-01-02T03:04:05.123456+02:00",
        "2025-01-02T03:04:05",
        "2025-01-02",
        "not a date",
        1735787045,
        1735787045.5,
    ]
)
_statuses = st.sampled_from(["UPLOADED", "ERRORED", "INVOKED", "PAUSED", "NEW_STATUS", ""])
_ints = st.one_of(st.integers(0, 10**12), st.sampled_from([0.0, 12.0, 1.5, "42"]))
_bools = st.one_of(st.booleans(), st.sampled_from(["true", "False", 0, 1, "yes"]))


def _doc(
    fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with ``required`` keys and any subset of the rest: clean ones (valid or
    null values) and messy ones (any key may be missing or hold a wrong type)."""

    def clean(name: str) -> st.SearchStrategy[Any]:
        return fields[name] if name in required else st.one_of(fields[name], st.none())

    messy = {k: st.one_of(v, st.none(), _junk) for k, v in fields.items()}
    return st.one_of(
        st.fixed_dictionaries(
            {k: clean(k) for k in required},
            optional={k: clean(k) for k in fields if k not in required},
        ),
        st.fixed_dictionaries({}, optional=messy),
    )


_caller = _doc(
    {
        "name": st.text(max_size=5),
        "type": st.sampled_from(["USER", "BOT"]),
        "user_Id": st.text(max_size=5),
    }
)
_reason = _doc(
    {"caller": _caller, "reason": st.sampled_from(["API_CALL", "RECORD_ON_START", "OTHER"])}
)
_storage = _doc(
    {
        "type": st.sampled_from(["aws", "gcs"]),
        "bucket": st.text(max_size=5),
        "port": _ints,
        "auth_method": st.sampled_from(["KEY", "PASSWORD"]),
    }
)
_meeting = _doc(
    {
        "id": st.text(max_size=8),
        "created_at": _timestamps,
        "updated_at": _timestamps,
        "live_stream_on_start": _bools,
        "persist_chat": _bools,
        "session_keep_alive_time_in_secs": _ints,
        "status": st.sampled_from(["ACTIVE", "INACTIVE", "ENDED"]),
        "title": st.text(max_size=8),
    },
    required=("id",),
)
_recording = _doc(
    {
        "id": st.text(max_size=8),
        "status": _statuses,
        "invoked_time": _timestamps,
        "output_file_name": st.text(max_size=8),
        "download_url": st.text(max_size=8),
        "download_url_expiry": _timestamps,
        "file_size": _ints,
        "started_time": _timestamps,
        "recording_duration": _ints,
        "meeting": _meeting,
        "start_reason": _reason,
        "stop_reason": _reason,
        "storage_config": _storage,
    },
    required=("id", "status"),
)
_paging = _doc({"start_offset": _ints, "end_offset": _ints, "total_count": _ints})


@settings(max_examples=400, deadline=None)
@given(doc=st.one_of(_recording, _junk))
def test_recording_documents(reference: Converter, doc: Any) -> None:
    _same(reference, doc, Recording)


@settings(max_examples=150, deadline=None)
@given(
    doc=st.one_of(
        st.fixed_dictionaries({"data": st.lists(_recording, max_size=3), "paging": _paging}),
        _doc({"data": st.lists(_recording, max_size=2), "paging": _paging}),
        _junk,
    )
)
def test_page_documents(reference: Converter, doc: Any) -> None:
    _same(reference, doc, RecordingPage)


@settings(max_examples=150, deadline=None)
@given(doc=st.one_of(_reason, _storage, _meeting, _paging, _junk), data=st.data())
def test_nested_documents(reference: Converter, doc: Any, data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from([Meeting, Paging, StartReason, StopReason, StorageConfig]))
    _same(reference, doc, cls)


async def test_emulator_pages_decode_identically(reference: Converter) -> None:
    async with Emulator(recordings=300, seed=3, speed=0, extra_fields=True) as emu:
        for view in ("list", "detail", "active"):
            docs = [emu.recording_json(rid, view) for rid in list(emu.store.recordings)[:300]]
            page = json.loads(json.dumps({"data": docs, "paging": {"total_count": len(docs)}}))
            _same(reference, page, RecordingPage)


# -- when the instance may be built by setting its slots --------------------------------


@attrs.frozen
class _Plain:
    a: int
    b: str | None = None


@attrs.frozen
class _Validated:
    a: int = attrs.field(validator=attrs.validators.instance_of(int))


@attrs.frozen
class _PostInit:
    a: int

    def __attrs_post_init__(self) -> None:
        pass


@attrs.define
class _OwnInit:
    a: int

    def __init__(self, a: int) -> None:
        self.__attrs_init__(a * 2)  # type: ignore[attr-defined]


@attrs.frozen(init=False)
class _NoInit:
    a: int


class _Subclass(_Plain):  # inherits attrs' __init__, adds a __dict__
    pass


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (_Plain, True),
        (Recording, True),
        (RecordingPage, True),
        (_Validated, False),
        (_PostInit, False),
        (_OwnInit, False),
        (_NoInit, False),
        (_Subclass, False),
        (int, False),
    ],
)
def test_slots_are_set_directly_only_when_that_is_all_init_does(cls: type, expected: bool) -> None:
    from realtimekit_async._fastdecode import _plain_slots

    assert _plain_slots(cls) is expected
