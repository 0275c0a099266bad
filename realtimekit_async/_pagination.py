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

__all__ = ["PageWalk", "RecordingPaginator", "Step"]

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


# -- the walk's rules, sans I/O ----------------------------------------------------------


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
    """One pass of a walk: where it starts, and what it has found out so far."""

    start: int
    prefetch: int
    #: Pages up to here were read by an earlier pass: repeats there are expected.
    known_until: int
    #: ``(page_no, total)`` of every answer, in the order the answers arrived.
    answered: list[tuple[int, int | None]] = attrs.field(factory=list)
    #: The page last taken in (pages are taken in page order).
    page_no: int = 0
    #: The next page to ask for, and the last one worth asking for.
    next_no: int = 0
    last: int = 0
    previous: int | None = None
    repeats: int = 0
    asked: bool = False  #: the first page has been asked for
    taken: bool = False  #: the first page has been taken in


@attrs.frozen
class Step:
    """What one page means for the walk."""

    #: The recordings on it not yielded before (``None``: nothing new).
    fresh: RecordingPage | None
    #: The pass ends here (no further page of it is worth reading).
    done: bool


class PageWalk:
    """The rules of one list walk, sans I/O: which pages to ask for and what each answer means.

    The driver (:meth:`RecordingPaginator.pages`) asks :meth:`to_fetch` which
    pages to request, calls :meth:`spend` as each request goes out and
    :meth:`answered` as each answer arrives (any order), hands every page to
    :meth:`take` in page order and yields what it calls fresh, and after each
    pass calls :meth:`end_pass` and then :meth:`next_pass` to learn whether a
    repair pass follows. A pass ends at the last page by ``paging``, at an empty
    page, or at a page of repeats that nothing explains; the walk ends when no
    repair is needed, after ``MAX_REPAIR_PASSES`` repairs, or with
    :class:`PaginationError` from :meth:`spend` past its budget.
    """

    def __init__(self, *, start: int, per_page: int, prefetch: int, max_pages: int) -> None:
        self._start = start
        self._per_page = per_page
        self._seen = _SeenIds()
        self._budget = _Budget(limit=max_pages, ceiling=max_pages)
        self._passes = 0
        #: The server's page size, from the walk's first answer.
        self.page_size: int | None = None
        #: Where a repair pass must start, when the list changed during the last pass.
        self.repair_from: int | None = None
        self._pass = _Pass(start=start, prefetch=prefetch, known_until=0)

    @property
    def passes(self) -> int:
        """Passes ended so far."""
        return self._passes

    def to_fetch(self, in_flight: int) -> list[int]:
        """The pages to ask for now, with ``in_flight`` requests of this pass outstanding.

        The first page of a pass goes alone (its answer sets the page size and
        the last page); then up to ``prefetch`` at once, never past the last page.
        """
        walk = self._pass
        if not walk.asked:
            walk.asked = True
            return [walk.start]
        wanted: list[int] = []
        while walk.taken and in_flight + len(wanted) < walk.prefetch and walk.next_no <= walk.last:
            wanted.append(walk.next_no)
            walk.next_no += 1
        return wanted

    def spend(self, page_no: int) -> None:
        """Count a request as it goes out; raises :class:`PaginationError` past the budget."""
        self._budget.spend(page_no)

    def answered(self, page_no: int, total: int | None) -> None:
        """Note an answer's total as it arrives (answers may arrive out of page order)."""
        self._pass.answered.append((page_no, total))

    def take(self, page: RecordingPage) -> Step:
        """Judge the next page of the pass, in page order: what is fresh, whether the pass ends."""
        walk = self._pass
        if not walk.taken:
            return self._take_first(walk, page)
        walk.page_no += 1
        total = page.paging.total_count
        if not page.data:
            return Step(None, done=True)
        fresh = self._fresh(page)
        if fresh is not None:
            walk.repeats = 0
        elif walk.page_no <= walk.known_until:
            pass  # a repair pass re-reading pages it has seen
        elif _grew(walk.previous, total) and walk.repeats < MAX_REPEATED_PAGES:
            walk.repeats += 1  # new recordings pushed seen ones into this page
        else:
            return Step(None, done=True)  # nothing new, nothing explains it: a repeating server
        walk.previous = total
        walk.last = _last_page(page, walk.page_no, self._size)
        return Step(fresh, done=False)

    def _take_first(self, walk: _Pass, page: RecordingPage) -> Step:
        walk.taken = True
        walk.page_no = walk.next_no = walk.start
        walk.previous = page.paging.total_count
        if self.page_size is None:
            # The server's page size is what it sent, never more than was asked for.
            self.page_size = min(self._per_page, len(page.data)) or self._per_page
            self._budget.expect(page.paging.total_count, self.page_size)
        fresh = self._fresh(page)
        if fresh is None and (not page.data or walk.page_no > walk.known_until):
            return Step(None, done=True)
        walk.last = _last_page(page, walk.page_no, self._size)
        walk.next_no += 1
        return Step(fresh, done=False)

    @property
    def _size(self) -> int:
        return self.page_size or self._per_page

    def _fresh(self, page: RecordingPage) -> RecordingPage | None:
        fresh = self._seen.fresh(page.data)
        if not fresh:
            return None
        if len(fresh) == len(page.data):
            return page
        return RecordingPage(data=tuple(fresh), paging=page.paging)

    def end_pass(self) -> None:
        """Close the pass (normally or not): note where a repair must start, if anywhere."""
        # The server's page size: a capped one shifts pages further per moved item.
        self.repair_from = repair_start(self._pass.answered, self._size)
        self._passes += 1

    def next_pass(self) -> bool:
        """Start a repair pass if the last one needs it (and repairs are left); ``False``: done."""
        if self.repair_from is None or self._passes > MAX_REPAIR_PASSES:
            return False
        # A repair pass reads in page order, where an insert can only push seen
        # recordings forward (they are dropped as repeats); up to the furthest
        # page read before, pages of repeats are expected and do not end it.
        furthest = max(self._pass.page_no, self._pass.start)
        self._pass = _Pass(
            start=max(self._start, self.repair_from), prefetch=1, known_until=furthest
        )
        return True


class RecordingPaginator:
    """A lazily fetched, auto-paginating list of recordings.

    Walks ``page_no`` upward from the requested page and stops at the last page
    by ``paging`` (re-read from every page, since it changes while recordings
    come and go) at the page size the server actually sends, at an empty page,
    at a page that holds nothing new while the total did not grow (a server
    repeating itself), and at the latest at its page budget, with
    :class:`PaginationError`. Within one walk no recording is yielded twice;
    recordings a repair pass recovers (see the module docstring) come after the
    rest. The rules are :class:`PageWalk`'s; this class only fetches.
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

    def __repr__(self) -> str:
        return (
            f"<RecordingPaginator page_no={self._page_no} per_page={self._per_page} "
            f"prefetch={self._prefetch} max_pages={self._max_pages}>"
        )

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
        walk = PageWalk(
            start=self._page_no,
            per_page=self._per_page,
            prefetch=self._prefetch,
            max_pages=self._max_pages,
        )
        while True:
            async with contextlib.aclosing(self._pass(walk)) as pages:
                async for page in pages:
                    yield page
            if not walk.next_pass():
                return

    async def _pass(self, walk: PageWalk) -> AsyncGenerator[RecordingPage, None]:
        """One pass of ``walk``: up to its prefetch of pages in flight, taken in page order."""

        async def fetch(number: int) -> RecordingPage:
            walk.spend(number)
            page = await self._fetch(number)
            walk.answered(number, page.paging.total_count)
            return page

        window: deque[asyncio.Future[RecordingPage]] = deque()
        try:
            while True:
                for number in walk.to_fetch(len(window)):
                    window.append(asyncio.ensure_future(fetch(number)))
                if not window:
                    return
                step = walk.take(await window.popleft())
                if step.fresh is not None:
                    yield step.fresh
                if step.done:
                    return
        finally:
            # Runs on exhaustion, on error, and (via the event loop's async-generator
            # finaliser) when the caller breaks out early. It must not await: it may
            # run from a finaliser task that nothing waits for.
            for task in window:
                task.add_done_callback(_retrieve)
                task.cancel()
            walk.end_pass()


def _retrieve(task: asyncio.Future[RecordingPage]) -> None:
    """Mark an abandoned prefetch's outcome as seen, so asyncio does not log it."""
    if not task.cancelled():
        task.exception()
