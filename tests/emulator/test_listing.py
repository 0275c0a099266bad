"""List endpoint: filters, sort orders, paging, validation, determinism."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from realtimekit_async.emulator import Emulator
from realtimekit_async.emulator.pytest_plugin import EmulatorFactory

from ._support import call, start

PAGE_KEYS = {"success", "data", "paging"}
MEETING_KEYS = {
    "id",
    "created_at",
    "updated_at",
    "live_stream_on_start",
    "persist_chat",
    "record_on_start",
    "session_keep_alive_time_in_secs",
    "status",
    "summarize_on_end",
    "title",
}


@pytest_asyncio.fixture
async def seeded(make_emu: EmulatorFactory) -> Emulator:
    return await make_emu(recordings=300, meetings=20, seed=7)


async def list_page(
    session: aiohttp.ClientSession, emu: Emulator, params: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    reply = await call(session, "GET", emu.recordings_url, emu=emu, params=list(params))
    assert reply.status == 200, reply.body
    assert set(reply.body) == PAGE_KEYS
    body: dict[str, Any] = reply.body
    return body


async def list_all(
    session: aiohttp.ClientSession, emu: Emulator, params: Sequence[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = await list_page(session, emu, [*params, ("per_page", "100"), ("page_no", str(page))])
        if not body["data"]:
            return items
        items.extend(body["data"])
        page += 1


def when(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["invoked_time"])


async def test_default_page_shape_and_paging(
    seeded: Emulator, session: aiohttp.ClientSession
) -> None:
    body = await list_page(session, seeded)
    assert body["success"] is True
    assert len(body["data"]) == 20  # default per_page
    assert body["paging"] == {"start_offset": 1, "end_offset": 20, "total_count": 300}
    item = body["data"][0]
    assert set(item["meeting"]) == MEETING_KEYS
    assert item["meeting"]["status"] in ("ACTIVE", "INACTIVE")
    times = [when(i) for i in body["data"]]
    assert times == sorted(times, reverse=True)  # DESC by default


async def test_pages_partition_the_result(seeded: Emulator, session: aiohttp.ClientSession) -> None:
    seen: list[str] = []
    for page in range(1, 5):
        body = await list_page(session, seeded, [("per_page", "80"), ("page_no", str(page))])
        start_offset = (page - 1) * 80 + 1
        count = min(80, 300 - (page - 1) * 80)
        assert body["paging"] == {
            "start_offset": start_offset,
            "end_offset": start_offset + count - 1,
            "total_count": 300,
        }
        seen.extend(i["id"] for i in body["data"])
    assert len(seen) == len(set(seen)) == 300
    past = await list_page(session, seeded, [("per_page", "80"), ("page_no", "5")])
    assert past["data"] == []
    assert past["paging"] == {"start_offset": 321, "end_offset": 320, "total_count": 300}


async def test_sort_orders(seeded: Emulator, session: aiohttp.ClientSession) -> None:
    asc = await list_all(session, seeded, [("sort_by", "invokedTime"), ("sort_order", "ASC")])
    desc = await list_all(session, seeded, [("sort_order", "DESC")])
    assert [when(i) for i in asc] == sorted(when(i) for i in asc)
    assert [i["id"] for i in asc] == [i["id"] for i in reversed(desc)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("per_page", "ten")], "per_page must be a number >= 0, got 'ten'"),
        ([("per_page", "-1")], "per_page must be a number >= 0, got '-1'"),
        ([("page_no", "-3")], "page_no must be a number >= 0, got '-3'"),
        ([("page_no", "inf")], "page_no must be a number >= 0, got 'inf'"),
        ([("status", "UPLOADED"), ("status", "DONE")], "invalid status 'DONE'"),
        ([("sort_order", "UP")], "invalid sort_order 'UP'"),
        ([("expired", "maybe")], "expired must be true or false"),
        ([("start_time", "last week")], "start_time must be an ISO 8601 timestamp"),
    ],
)
async def test_bad_query_is_400(
    emu: Emulator,
    session: aiohttp.ClientSession,
    params: list[tuple[str, str]],
    message: str,
) -> None:
    reply = await call(session, "GET", emu.recordings_url, emu=emu, params=params)
    assert reply.status == 400
    assert reply.body["success"] is False
    assert reply.body["error"]["code"] == 400
    assert message in reply.body["error"]["message"]


@pytest.mark.parametrize(
    ("params", "first", "count"),
    [
        # (query, index of the first item on the page, items on the page)
        ([("page_no", "0"), ("per_page", "10")], 0, 10),  # page 0 is the first page
        ([("page_no", "1"), ("per_page", "10")], 0, 10),
        ([("page_no", "2.7"), ("per_page", "10")], 10, 10),  # fractions are floored
        ([("per_page", "0")], 0, 20),  # per_page 0 is the default
        ([("per_page", "500")], 0, 100),  # above the maximum: silently capped
        ([("per_page", "100.0")], 0, 100),
    ],
)
async def test_paging_values_the_schema_admits_are_accepted(
    seeded: Emulator,
    session: aiohttp.ClientSession,
    params: list[tuple[str, str]],
    first: int,
    count: int,
) -> None:
    everything = await list_page(session, seeded, [("per_page", "100")])
    body = await list_page(session, seeded, params)
    assert [r["id"] for r in body["data"]] == [
        r["id"] for r in everything["data"][first : first + count]
    ]
    assert body["paging"]["start_offset"] == first + 1
    assert body["paging"]["end_offset"] == first + count


async def test_max_per_page_configurable(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(recordings=250, meetings=5, max_per_page=250, default_per_page=50)
    assert len((await list_page(session, emu))["data"]) == 50
    assert len((await list_page(session, emu, [("per_page", "250")]))["data"]) == 250


async def test_meeting_filter(seeded: Emulator, session: aiohttp.ClientSession) -> None:
    meeting_id = next(iter(seeded.store.meetings))
    expected = {r.id for r in seeded.store.recordings.values() if r.meeting_id == meeting_id}
    items = await list_all(session, seeded, [("meeting_id", meeting_id)])
    assert {i["id"] for i in items} == expected
    assert expected
    assert all(i["meeting"]["id"] == meeting_id for i in items)


async def test_status_filter_with_repeated_keys(
    seeded: Emulator, session: aiohttp.ClientSession
) -> None:
    items = await list_all(session, seeded, [("status", "ERRORED"), ("status", "PAUSED")])
    expected = {r.id for r in seeded.store.recordings.values() if r.status in ("ERRORED", "PAUSED")}
    assert {i["id"] for i in items} == expected
    assert {i["status"] for i in items} <= {"ERRORED", "PAUSED"}
    assert any(i["status"] == "ERRORED" for i in items)
    assert any(i["status"] == "PAUSED" for i in items)


async def test_search_by_title_and_id_case_insensitive(
    seeded: Emulator, session: aiohttp.ClientSession
) -> None:
    meeting = next(iter(seeded.store.meetings.values()))
    word = meeting.title.split()[0]
    by_title = await list_all(session, seeded, [("search", word.upper())])
    expected = {
        r.id
        for r in seeded.store.recordings.values()
        if word.lower() in seeded.store.meetings[r.meeting_id].title.lower()
    }
    assert {i["id"] for i in by_title} == expected
    assert all(word.lower() in i["meeting"]["title"].lower() for i in by_title)
    by_id = await list_all(session, seeded, [("search", meeting.id[:13].upper())])
    assert {i["meeting"]["id"] for i in by_id} == {meeting.id}


async def test_time_range_is_inclusive(seeded: Emulator, session: aiohttp.ClientSession) -> None:
    everything = await list_all(session, seeded, [("sort_order", "ASC")])
    lo, hi = everything[50]["invoked_time"], everything[149]["invoked_time"]
    items = await list_all(
        session, seeded, [("start_time", lo), ("end_time", hi), ("sort_order", "ASC")]
    )
    expected = [i["id"] for i in everything if lo <= i["invoked_time"] <= hi]
    assert [i["id"] for i in items] == expected
    assert items[0]["invoked_time"] == lo
    assert items[-1]["invoked_time"] == hi


async def test_expired_filter(seeded: Emulator, session: aiohttp.ClientSession) -> None:
    now = seeded.now()
    expired = await list_all(session, seeded, [("expired", "true")])
    valid = await list_all(session, seeded, [("expired", "false")])
    assert expired
    assert valid
    assert all(datetime.fromisoformat(i["download_url_expiry"]) <= now for i in expired)
    assert all(datetime.fromisoformat(i["download_url_expiry"]) > now for i in valid)
    with_url = [r for r in seeded.store.recordings.values() if r.expiry_ms is not None]
    assert len(expired) + len(valid) == len(with_url)
    seeded.advance(8 * 86400)  # every URL is now past its 7-day expiry
    assert await list_all(session, seeded, [("expired", "false")]) == []


async def test_new_recordings_show_up_and_combined_filters(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    a = await start(session, emu, "alpha")
    emu.advance(1)
    b = await start(session, emu, "beta")
    body = await list_page(session, emu, [("status", "INVOKED"), ("status", "RECORDING")])
    assert [i["id"] for i in body["data"]] == [b["id"], a["id"]]
    emu.advance(1)  # a becomes RECORDING at +2 s, b is still INVOKED
    body = await list_page(session, emu, [("status", "RECORDING")])
    assert [i["id"] for i in body["data"]] == [a["id"]]
    body = await list_page(session, emu, [("status", "INVOKED"), ("search", "BET")])
    assert [i["id"] for i in body["data"]] == [b["id"]]


async def test_same_seed_same_data(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    one = await make_emu(recordings=120, meetings=10, seed=42)
    two = await make_emu(recordings=120, meetings=10, seed=42)
    three = await make_emu(recordings=120, meetings=10, seed=43)

    def strip(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # URLs embed the storage port, which differs per instance.
        return [
            {k: v for k, v in i.items() if k not in ("download_url", "audio_download_url")}
            for i in items
        ]

    first = strip(await list_all(session, one))
    assert first == strip(await list_all(session, two))
    assert len(first) == 120
    assert {i["id"] for i in first}.isdisjoint({i["id"] for i in await list_all(session, three)})
    new_one = await start(session, one, "same-meeting")
    new_two = await start(session, two, "same-meeting")
    assert new_one["id"] == new_two["id"]
