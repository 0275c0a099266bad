"""Auto-pagination: ordering, prefetch, stopping rules and de-duplication."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from realtimekit_async import Paging, RealtimeKit, Recording, RecordingPage, RecordingStatus
from realtimekit_async._pagination import RecordingPaginator, repair_start

from ._support import RECORDINGS, eventually, ok, recording_json, sent

# A recording always has an invocation time and a file name.
INVOKED = datetime(2025, 1, 1, tzinfo=UTC)


def rec(i: int | str) -> Recording:
    return Recording(str(i), RecordingStatus.UPLOADED, INVOKED, "r.mp4")


class FakeServer:
    """An offset-paged list whose contents a test can change between page requests."""

    def __init__(self, ids: list[int], per_page: int) -> None:
        self.ids = list(ids)
        self.per_page = per_page
        self.requested: list[int] = []
        self.before_page: Callable[[int], None] = lambda page_no: None
        self.total_override: int | None = None
        self.in_flight = 0
        self.max_in_flight = 0

    async def fetch(self, page_no: int) -> RecordingPage:
        self.requested.append(page_no)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let prefetched requests overlap
            self.before_page(page_no)
            start = (page_no - 1) * self.per_page
            chunk = self.ids[start : start + self.per_page]
            total = self.total_override if self.total_override is not None else len(self.ids)
            return RecordingPage(
                data=tuple(rec(i) for i in chunk),
                paging=Paging(
                    start_offset=start + 1, end_offset=start + len(chunk), total_count=total
                ),
            )
        finally:
            self.in_flight -= 1

    def paginator(self, prefetch: int = 4, page_no: int = 1) -> RecordingPaginator:
        return RecordingPaginator(
            self.fetch, page_no=page_no, per_page=self.per_page, prefetch=prefetch
        )


async def ids_of(paginator: RecordingPaginator) -> list[str]:
    return [r.id async for r in paginator]


@pytest.mark.parametrize("prefetch", [1, 3, 8])
@pytest.mark.parametrize(("count", "per_page"), [(0, 10), (1, 10), (10, 10), (25, 10), (101, 7)])
async def test_walks_everything_in_order(count: int, per_page: int, prefetch: int) -> None:
    server = FakeServer(list(range(count)), per_page)
    assert await ids_of(server.paginator(prefetch)) == [str(i) for i in range(count)]
    pages = -(-count // per_page)
    assert sorted(server.requested) == list(range(1, max(pages, 1) + 1))


async def test_await_gives_one_page() -> None:
    server = FakeServer(list(range(25)), 10)
    page = await server.paginator(page_no=2)
    assert [r.id for r in page.data] == [str(i) for i in range(10, 20)]
    assert server.requested == [2]


async def test_walk_starts_at_the_requested_page() -> None:
    server = FakeServer(list(range(25)), 10)
    assert await ids_of(server.paginator(page_no=2)) == [str(i) for i in range(10, 25)]


async def test_pages_yields_each_page() -> None:
    server = FakeServer(list(range(25)), 10)
    sizes = [len(p.data) async for p in server.paginator().pages()]
    assert sizes == [10, 10, 5]


async def test_prefetch_bounds_concurrency() -> None:
    server = FakeServer(list(range(200)), 10)
    await ids_of(server.paginator(prefetch=3))
    assert server.max_in_flight == 3
    server = FakeServer(list(range(200)), 10)
    await ids_of(server.paginator(prefetch=1))
    assert server.max_in_flight == 1


async def test_stops_on_empty_page_despite_a_larger_total() -> None:
    server = FakeServer(list(range(15)), 10)
    server.total_override = 1000  # a wrong total must not make us walk 100 pages
    assert await ids_of(server.paginator(prefetch=2)) == [str(i) for i in range(15)]
    assert max(server.requested) <= 4


async def test_total_shrinking_mid_walk() -> None:
    server = FakeServer(list(range(50)), 10)

    def shrink(page_no: int) -> None:
        if page_no == 2:
            del server.ids[30:]

    server.before_page = shrink
    assert await ids_of(server.paginator(prefetch=1)) == [str(i) for i in range(30)]
    # The new total ends the walk at page 3; as the total moved at page 2, a
    # repair pass reads again from page 1 (finding nothing new).
    assert server.requested == [1, 2, 3, 1, 2, 3]


async def test_total_growing_mid_walk() -> None:
    server = FakeServer(list(range(20)), 10)

    def grow(page_no: int) -> None:
        if page_no == 2:
            server.ids.extend(range(20, 35))

    server.before_page = grow
    assert await ids_of(server.paginator(prefetch=1)) == [str(i) for i in range(35)]


async def test_shifted_pages_never_yield_twice() -> None:
    server = FakeServer(list(range(30)), 10)

    def insert_at_front(page_no: int) -> None:
        if page_no > 1:
            server.ids.insert(0, 1000 + page_no)  # newest first: pushes everything back

    server.before_page = insert_at_front
    got = await ids_of(server.paginator(prefetch=1))
    assert len(got) == len(set(got))
    assert {str(i) for i in range(30)} <= set(got)


async def test_repeated_page_stops_the_walk() -> None:
    calls: list[int] = []

    async def same_page(page_no: int) -> RecordingPage:
        calls.append(page_no)
        return RecordingPage(data=(rec(1), rec(2)), paging=Paging(total_count=10**9))

    paginator = RecordingPaginator(same_page, page_no=1, per_page=2, prefetch=4)
    assert await ids_of(paginator) == ["1", "2"]
    assert len(calls) <= 5


async def test_missing_total_walks_until_a_short_page() -> None:
    async def no_total(page_no: int) -> RecordingPage:
        items = list(range((page_no - 1) * 10, min(page_no * 10, 25)))
        return RecordingPage(data=tuple(rec(i) for i in items), paging=Paging())

    got = await ids_of(RecordingPaginator(no_total, page_no=1, per_page=10, prefetch=4))
    assert got == [str(i) for i in range(25)]


async def test_error_in_a_prefetched_page_propagates_in_order() -> None:
    server = FakeServer(list(range(50)), 10)

    def fail(page_no: int) -> None:
        if page_no == 3:
            raise RuntimeError("page 3 broke")

    server.before_page = fail
    got: list[str] = []

    async def consume() -> None:
        async for r in server.paginator(prefetch=4):
            got.append(r.id)

    with pytest.raises(RuntimeError, match="page 3 broke"):
        await consume()
    assert got == [str(i) for i in range(20)]  # everything before the bad page arrived


async def test_early_break_leaves_no_task_behind() -> None:
    server = FakeServer(list(range(1000)), 10)
    async for r in server.paginator(prefetch=8):
        if r.id == "15":
            break
    gc.collect()
    for _ in range(5):
        await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert max(server.requested) <= 1 + 8 + 1


async def test_walk_over_http(api: Any, client: RealtimeKit) -> None:
    for page_no, ids in [(1, ["a", "b"]), (2, ["c", "d"]), (3, ["e"])]:
        api.get(
            f"{RECORDINGS}?status=UPLOADED&page_no={page_no}&per_page=2",
            payload=ok([recording_json(id=i) for i in ids], paging={"total_count": 5}),
        )
    got = [r.id async for r in client.recordings.list(status="UPLOADED", per_page=2)]
    assert got == ["a", "b", "c", "d", "e"]
    assert sorted(r.query["page_no"] for r in sent(api)) == ["1", "2", "3"]
    assert all(r.query.getall("status") == ["UPLOADED"] for r in sent(api))


async def test_early_break_over_http_then_close(api: Any, client: RealtimeKit) -> None:
    for page_no in range(1, 6):
        api.get(
            f"{RECORDINGS}?page_no={page_no}&per_page=2",
            payload=ok(
                [recording_json(id=f"{page_no}-{i}") for i in range(2)], paging={"total_count": 10}
            ),
        )
    async for r in client.recordings.list(per_page=2, prefetch=4):
        assert r.id == "1-0"
        break
    gc.collect()
    # The loop closes the abandoned generator in a task of its own: wait for it to end.
    await eventually(lambda: asyncio.all_tasks() == {asyncio.current_task()})


@pytest.mark.parametrize(
    ("answered", "expected"),
    [
        ([], None),
        ([(1, 30), (2, 30), (3, 30)], None),
        ([(1, None), (2, None)], None),
        ([(1, 30), (2, 30), (3, 31)], 2),
        # Page 5 was answered after the change, page 4 even later: both were cut
        # after it, so recordings may have slid back from page 4 into page 3.
        ([(1, 30), (3, 30), (5, 31), (4, 30)], 3),
        # 25 recordings gone: items may have slid back more than two pages.
        ([(1, 100), (2, 100), (6, 75)], 3),
        ([(3, 40), (4, 41)], 3),
    ],
)
def test_repair_start(answered: list[tuple[int, int | None]], expected: int | None) -> None:
    assert repair_start(answered, per_page=10) == expected


async def test_a_walk_without_changes_reads_each_page_once() -> None:
    server = FakeServer(list(range(95)), 10)
    assert await ids_of(server.paginator(prefetch=4)) == [str(i) for i in range(95)]
    assert sorted(server.requested) == list(range(1, 11))


class CappingServer(FakeServer):
    """A server that silently serves at most ``cap`` a page, whatever was asked for."""

    def __init__(self, ids: list[int], cap: int, *, offsets: bool = True) -> None:
        super().__init__(ids, cap)
        self.offsets = offsets

    async def fetch(self, page_no: int) -> RecordingPage:
        page = await super().fetch(page_no)
        if self.offsets:
            return page
        return RecordingPage(data=page.data, paging=Paging(total_count=page.paging.total_count))


@pytest.mark.parametrize("prefetch", [1, 3, 8])
@pytest.mark.parametrize("offsets", [True, False])
@pytest.mark.parametrize(("count", "cap", "asked"), [(250, 100, 200), (23, 5, 7), (5, 5, 100)])
async def test_a_silently_capped_page_size_skips_nothing(
    count: int, cap: int, asked: int, offsets: bool, prefetch: int
) -> None:
    # The old arithmetic used the size asked for: 250 at "200 a page" is 2 pages,
    # and the walk ended after recording 200.
    server = CappingServer(list(range(count)), cap, offsets=offsets)
    walk = RecordingPaginator(server.fetch, page_no=1, per_page=asked, prefetch=prefetch)
    assert await ids_of(walk) == [str(i) for i in range(count)]
    assert sorted(set(server.requested)) == list(range(1, -(-count // cap) + 1))


@pytest.mark.parametrize("prefetch", [1, 4])
async def test_a_capped_page_size_without_a_total_skips_nothing(prefetch: int) -> None:
    server = CappingServer(list(range(250)), 100)
    server.total_override = None

    async def no_total(page_no: int) -> RecordingPage:
        page = await CappingServer.fetch(server, page_no)
        return RecordingPage(data=page.data, paging=Paging())

    walk = RecordingPaginator(no_total, page_no=1, per_page=200, prefetch=prefetch)
    assert await ids_of(walk) == [str(i) for i in range(250)]


async def test_a_repair_pass_after_a_capped_walk_recovers_what_slid_back() -> None:
    # Twelve removals during a walk on a server capping 10 a page (asked: 100): what
    # was behind the cursor slid back more than a page, so the repair must count in
    # the pages of 10 the server really sends (with 100 it started a page too late).
    server = CappingServer(list(range(60)), 10)
    removed = False

    def remove_one(page_no: int) -> None:
        nonlocal removed
        if page_no == 4 and not removed:
            removed = True
            del server.ids[:12]  # everything after them slides back twelve places

    server.before_page = remove_one
    walk = RecordingPaginator(server.fetch, page_no=1, per_page=100, prefetch=1)
    got = await ids_of(walk)
    assert sorted(got, key=int) == [str(i) for i in range(60)]
    assert len(got) == len(set(got))


def test_repr_shows_the_walk_settings() -> None:
    walk = RecordingPaginator(FakeServer([], 10).fetch, page_no=2, per_page=50, prefetch=3)
    assert repr(walk) == "<RecordingPaginator page_no=2 per_page=50 prefetch=3 max_pages=10000>"
