"""The paginator's memory of yielded ids: exact, and compact for long walks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtimekit_async import _pagination
from realtimekit_async._models import Paging, Recording, RecordingPage, RecordingStatus
from realtimekit_async._pagination import RecordingPaginator, _compact_id, _SeenIds

# A recording always has an invocation time and a file name.
INVOKED = datetime(2025, 1, 1, tzinfo=UTC)


def rec(rid: str) -> Recording:
    return Recording(rid, RecordingStatus.UPLOADED, INVOKED, "r.mp4")


_uuids = st.uuids().map(str)


def _near_misses(u: str) -> list[str]:
    """Strings int(..., 16) could confuse with a canonical UUID."""
    h = u.replace("-", "")
    return [
        u.upper(),
        *(
            u[:i] + u[i:j].upper() + u[j:]
            for i, j in ((0, 8), (9, 13), (14, 18), (19, 23), (24, 36))
        ),
        "0x" + u[2:],
        "0X" + u[2:],
        u.replace("-", "_"),
        f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:24]}-{h[24:31]}",  # a dash moved
        " " + u[1:],
        u[:-1] + " ",
        u[:-1] + "٣",  # a non-ASCII digit
        u[:-1],
        u + "0",
        h,
    ]


_ids = st.one_of(
    _uuids,
    _uuids.flatmap(lambda u: st.sampled_from(_near_misses(u))),
    st.text(max_size=40),
)


@settings(max_examples=500, deadline=None)
@given(a=_ids, b=_ids)
def test_compact_ids_are_one_to_one(a: str, b: str) -> None:
    assert (_compact_id(a) == _compact_id(b)) == (a == b)


@given(u=_uuids)
def test_near_misses_never_collide_with_their_uuid(u: str) -> None:
    key = _compact_id(u)
    assert isinstance(key, int)
    assert key == uuid.UUID(u).int
    for other in _near_misses(u):
        if other != u:  # upper-casing an all-digit group changes nothing
            assert _compact_id(other) != key


def test_only_canonical_uuids_become_ints() -> None:
    u = str(uuid.uuid4())
    assert isinstance(_compact_id(u), int)
    assert _compact_id(u.upper()) == u.upper()
    assert _compact_id("rec-1") == "rec-1"
    assert _compact_id("") == ""


@settings(max_examples=200, deadline=None)
@given(
    threshold=st.sampled_from([1, 3, 7, 10_000]),
    pages=st.lists(st.lists(st.one_of(_uuids, st.sampled_from(["a", "b", "A"])), max_size=6)),
)
def test_each_id_is_fresh_exactly_once(threshold: int, pages: list[list[str]]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_pagination, "COMPACT_IDS_AFTER", threshold)
        seen = _SeenIds()
        yielded: list[str] = []
        for page in pages:
            yielded += [r.id for r in seen.fresh([rec(i) for i in page])]
    expected = list(dict.fromkeys(i for page in pages for i in page))
    assert yielded == expected


async def test_a_page_repeating_an_id_yields_it_once() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())

    async def fetch(number: int) -> RecordingPage:
        data = (rec(a), rec(b), rec(a)) if number == 1 else ()
        return RecordingPage(data=data, paging=Paging(total_count=3))

    got = [r.id async for r in RecordingPaginator(fetch, page_no=1, per_page=3, prefetch=2)]
    assert got == [a, b]


async def test_a_long_walk_compacts_and_still_drops_repeats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_pagination, "COMPACT_IDS_AFTER", 10)
    ids = [str(uuid.UUID(int=n)) for n in range(60)] + ["plain-1", "plain-2"]

    async def fetch(number: int) -> RecordingPage:
        # Every page repeats the previous page's last id, as after an insert.
        start = (number - 1) * 5
        data = tuple(rec(i) for i in ids[max(0, start - 1) : start + 5])
        return RecordingPage(data=data, paging=Paging(total_count=len(ids)))

    got = [r.id async for r in RecordingPaginator(fetch, page_no=1, per_page=5, prefetch=3)]
    assert got == ids
