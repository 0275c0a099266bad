"""Auto-pagination over the recordings list.

``await`` a paginator for one page, ``async for`` it for every recording, or
walk :meth:`RecordingPaginator.pages`. Once the first page tells the total,
up to ``prefetch`` following pages are fetched concurrently while items are
still yielded in order.

The page arithmetic comes from the answers, never from the ``per_page`` asked
for: servers cap it silently (ask 200, get 100), so the page size is what the
first page brought (``len(data)``), and the last page is judged from each
answer's ``paging`` (``total_count``, ``end_offset``).

Offset paging has a weakness: when recordings are added or removed while the
walk runs, the rest of the list shifts, so a page read later can hold repeats
(dropped here by id) or can have lost an item into a page already read. Every
page carries the list's total; when it moved during a pass, a repair pass walks
again, in page order, from just before the lowest page cut after the move.

Every walk ends: at the last page, at an empty page, at a page of repeats that
nothing explains, and at the latest when it has read the pages its budget
allows (:func:`~realtimekit_async._sansio.walk_budget`: eight times what the
first answer implied plus 32, at most ``max_pages``), with a
:class:`PaginationError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Sequence
from typing import Any, Final

import attrs

from ._exceptions import PaginationError
from ._models import Recording, RecordingPage
from ._sansio import MAX_WALK_PAGES, last_page, page_count, walk_budget

__all__ = ["RecordingPaginator"]

FetchPage = Callable[[int], Awaitable[RecordingPage]]

#: Repair passes after the first; a list still changing after that many is left be.
MAX_REPAIR_PASSES: Final = 3
#: Pages in a row holding only repeats that a growing total may explain.
MAX_REPEATED_PAGES: Final = 3
#: Ids remembered as given up to here; past it, UUIDs are kept as 128-bit ints.
COMPACT_IDS_AFTER: Final = 25_000

_CANONICAL_UUID: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
).fullmatch


def _compact_id(rid: str) -> str | int:
    """A canonical (lowercase) UUID as its 128-bit int, any other id unchanged.

    One-to-one: an int only ever stands for the one string of that exact form,
    and ints never equal strings.
    """
    return int(rid.replace("-", ""), 16) if _CANONICAL_UUID(rid) else rid


class _SeenIds:
    """The ids one walk has yielded, so that none is yielded twice.

    A long walk would keep every id string alive (about 125 bytes each with the
    set's table); past ``COMPACT_IDS_AFTER`` ids the UUIDs are held as ints
    instead (about 85 bytes), which keeps a 100,000-recording walk's memory
    growth a third lower. Short walks skip the conversion.
    """

    __slots__ = ("_compact", "_ids")

    def __init__(self) -> None:
        self._ids: set[str | int] = set()
        self._compact = False

    def fresh(self, recordings: Sequence[Recording]) -> list[Recording]:
        """The recordings not seen before (a repeat within the list counts too); remember them."""
        ids = self._ids
        fresh: list[Recording] = []
        if self._compact:
            for recording in recordings:
                key = _compact_id(recording.id)
                if key not in ids:
                    ids.add(key)
                    fresh.append(recording)
            return fresh
        for recording in recordings:
            if recording.id not in ids:
                ids.add(recording.id)
                fresh.append(recording)
        if len(ids) >= COMPACT_IDS_AFTER:
            self._ids = {_compact_id(key) if isinstance(key, str) else key for key in ids}
            self._compact = True
        return fresh


def _last_page(page: RecordingPage, page_no: int, page_size: int) -> int:
    """The last page number worth asking for, judged from the page just read."""
    paging = page.paging
    return last_page(page_no, len(page.data), page_size, paging.total_count, paging.end_offset)


def _grew(before: int | None, after: int | None) -> bool:
    return before is not None and after is not None and after > before


def repair_start(answered: Sequence[tuple[int, int | None]], per_page: int) -> int | None:
    """Where a repair pass must start, from a pass's ``(page_no, total)`` in answer order.

    ``None`` when every answer saw the first answer's total. Otherwise every page
    answered from the first differing answer on was cut after the list changed,
    so recordings may have slid from the lowest of them back into earlier pages,
    by at most as many places as the total moved.
    """
    if not answered:
        return None
    reference = answered[0][1]
    for i, (_, total) in enumerate(answered):
        if total != reference:
            later = answered[i:]
            lowest = min(page_no for page_no, _ in later)
            drift = max(
                abs(t - reference) for _, t in later if t is not None and reference is not None
            )
            return max(1, lowest - 1 - drift // per_page)
    return None


class RecordingPaginator:
    """A lazily fetched, auto-paginating list of recordings.

    Walks ``page_no`` upward from the requested page and stops at the last page
    by ``paging`` (re-read from every page, since it changes while recordings
    come and go) at the page size the server actually sends, at an empty page,
    at a page that holds nothing new while the total did not grow (a server
    repeating itself), and at the latest at its page budget, with
    :class:`PaginationError`. Within one walk no recording is yielded twice;
    recordings a repair pass recovers (see the module docstring) come after the
    rest.
    """

    def __init__(
        self,
        fetch: FetchPage,
        *,
        page_no: int,
        per_page: int,
        prefetch: int,
        max_pages: int = MAX_WALK_PAGES,
    ) -> None:
        self._fetch = fetch
        self._page_no = page_no
        self._per_page = per_page
        self._prefetch = prefetch
        self._max_pages = max_pages

    def __await__(self) -> Generator[Any, None, RecordingPage]:
        return self._fetch(self._page_no).__await__()

    def __aiter__(self) -> AsyncIterator[Recording]:
        return self._items()

    async def _items(self) -> AsyncIterator[Recording]:
        # aclosing: an early break closes the whole chain of generators at once.
        async with contextlib.aclosing(self.pages()) as pages:
            async for page in pages:
                for recording in page.data:
                    yield recording

    async def pages(self) -> AsyncGenerator[RecordingPage, None]:
        """Yield every page in order, each holding only recordings not yielded before.

        Raises :class:`PaginationError` when the server keeps sending pages past
        the walk's budget (after every page read so far was yielded).
        """
        seen = _SeenIds()
        walk = _Pass(
            start=self._page_no,
            prefetch=self._prefetch,
            known_until=0,
            budget=_Budget(limit=self._max_pages, ceiling=self._max_pages),
        )
        for _ in range(1 + MAX_REPAIR_PASSES):
            async with contextlib.aclosing(self._pass(walk, seen)) as pages:
                async for page in pages:
                    yield page
            if walk.repair_from is None:
                return
            # A repair pass reads in page order, where an insert can only push seen
            # recordings forward (they are dropped as repeats); up to the furthest
            # page read before, pages of repeats are expected and do not end it.
            walk = _Pass(
                start=max(self._page_no, walk.repair_from),
                prefetch=1,
                known_until=walk.furthest,
                budget=walk.budget,
                page_size=walk.page_size,
            )

    async def _pass(self, walk: _Pass, seen: _SeenIds) -> AsyncGenerator[RecordingPage, None]:
        """One walk from ``walk.start``, noting in ``walk`` where a repair must start."""
        answered: list[tuple[int, int | None]] = []
        budget = walk.budget

        async def fetch(number: int) -> RecordingPage:
            budget.spend(number)
            page = await self._fetch(number)
            answered.append((number, page.paging.total_count))
            return page

        def fresh_part(page: RecordingPage) -> RecordingPage:
            fresh = seen.fresh(page.data)
            if len(fresh) == len(page.data):
                return page
            return RecordingPage(data=tuple(fresh), paging=page.paging)

        page_no = walk.furthest = walk.start
        page = await fetch(page_no)
        previous = page.paging.total_count
        if walk.page_size is None:
            # The server's page size is what it sent, never more than was asked for.
            walk.page_size = min(self._per_page, len(page.data)) or self._per_page
            budget.expect(page.paging.total_count, walk.page_size)
        size = walk.page_size
        part = fresh_part(page)
        if part.data:
            yield part
        elif not page.data or page_no > walk.known_until:
            return
        last = _last_page(page, page_no, size)
        repeats = 0
        window: deque[asyncio.Future[RecordingPage]] = deque()
        next_no = page_no + 1
        try:
            while True:
                while len(window) < walk.prefetch and next_no <= last:
                    window.append(asyncio.ensure_future(fetch(next_no)))
                    next_no += 1
                if not window:
                    return
                page = await window.popleft()
                page_no = walk.furthest = page_no + 1
                total = page.paging.total_count
                if not page.data:
                    return
                part = fresh_part(page)
                if part.data:
                    repeats = 0
                    yield part
                elif page_no <= walk.known_until:
                    pass  # a repair pass re-reading pages it has seen
                elif _grew(previous, total) and repeats < MAX_REPEATED_PAGES:
                    repeats += 1  # new recordings pushed seen ones into this page
                else:
                    return  # nothing new and nothing explains it: the server repeats itself
                previous = total
                last = _last_page(page, page_no, size)
        finally:
            # Runs on exhaustion, on error, and (via the event loop's async-generator
            # finaliser) when the caller breaks out early. It must not await: it may
            # run from a finaliser task that nothing waits for.
            for task in window:
                task.add_done_callback(_retrieve)
                task.cancel()
            # The server's page size: a capped one shifts pages further per moved item.
            walk.repair_from = repair_start(answered, walk.page_size or self._per_page)


@attrs.define
class _Budget:
    """How many pages a walk (all its passes) may still read; see :func:`walk_budget`."""

    limit: int
    ceiling: int
    spent: int = 0
    said: str = "no total"

    def expect(self, total: int | None, page_size: int) -> None:
        """Set the limit from the first answer's total and page size."""
        expected = None if total is None else page_count(max(0, total), page_size)
        self.limit = walk_budget(expected, self.ceiling)
        if total is not None:
            self.said = f"{total} recordings in pages of {page_size}"

    def spend(self, page_no: int) -> None:
        """Count one page read; raises :class:`PaginationError` past the limit."""
        if self.spent >= self.limit:
            raise PaginationError(
                f"GET recordings: the list walk read {self.spent} pages and page {page_no} "
                f"would go past its bound of {self.limit} (the first answer said "
                f"{self.said}): the server keeps sending new pages",
                pages=self.spent,
                method="GET",
            )
        self.spent += 1


@attrs.define
class _Pass:
    """One pass of a walk: where it starts, and what it found out."""

    start: int
    prefetch: int
    #: Pages up to here were read by an earlier pass: repeats there are expected.
    known_until: int
    #: Shared by every pass of one walk.
    budget: _Budget
    #: The server's page size, from the walk's first answer.
    page_size: int | None = None
    #: Where a repair pass must start, when the list changed during this one.
    repair_from: int | None = None
    furthest: int = 0


def _retrieve(task: asyncio.Future[RecordingPage]) -> None:
    """Mark an abandoned prefetch's outcome as seen, so asyncio does not log it."""
    if not task.cancelled():
        task.exception()
