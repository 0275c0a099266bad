"""Property-based tests of the paginator under churn: recordings added and removed
while a walk runs.

Hypothesis settings stay modest so the default run stays fast; async scenarios run
each example in its own ``asyncio.run`` so every example starts from a clean loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from realtimekit_async import (
    Paging,
    Recording,
    RecordingPage,
    RecordingStatus,
)
from realtimekit_async._pagination import (
    MAX_REPAIR_PASSES,
    MAX_REPEATED_PAGES,
    RecordingPaginator,
)

from ._properties import FAST

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
    The list grows by at most half its size plus four: a list that grows as
    fast as it is read has no end, and the walk's page budget rightly cuts it
    (tests/test_hostile_paging.py); within this growth, even four full passes
    stay under that budget.
    """
    max_inserts = size // 2 + 4

    def mutate(server: ChurningServer, _page_no: int) -> None:
        for _ in range(data.draw(st.integers(min_value=0, max_value=3), label="changes")):
            low, high = server.requested_end, len(server.items)
            if len(server.inserted) < max_inserts and data.draw(st.booleans(), label="insert?"):
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
