"""Auto-pagination over the recordings list.

``await`` a paginator for one page, ``async for`` it for every recording, or
walk :meth:`RecordingPaginator.pages`. Once the first page tells the total,
up to ``prefetch`` following pages are fetched concurrently while items are
still yielded in order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

from ._models import Recording, RecordingPage
from ._sansio import page_count

__all__ = ["RecordingPaginator"]

FetchPage = Callable[[int], Awaitable[RecordingPage]]


def _last_page(page: RecordingPage, page_no: int, per_page: int) -> int:
    """The last page number worth asking for, judged from the page just read."""
    total = page.paging.total_count
    if total is None:  # no total: keep going while pages come back full
        return page_no + 1 if len(page.data) >= per_page else page_no
    return page_count(total, per_page)


class RecordingPaginator:
    """A lazily fetched, auto-paginating list of recordings.

    Walks ``page_no`` upward from the requested page and stops at the last page
    by ``paging.total_count`` (re-read from every page, since it changes while
    recordings come and go), at an empty page, or at a page that holds nothing
    new (a server repeating itself). Within one walk no recording is yielded
    twice, even when pages shift under it.
    """

    def __init__(self, fetch: FetchPage, *, page_no: int, per_page: int, prefetch: int) -> None:
        self._fetch = fetch
        self._page_no = page_no
        self._per_page = per_page
        self._prefetch = prefetch

    def __await__(self) -> Generator[Any, None, RecordingPage]:
        return self._fetch(self._page_no).__await__()

    def __aiter__(self) -> AsyncIterator[Recording]:
        return self._items()

    async def _items(self) -> AsyncIterator[Recording]:
        async for _page, fresh in self._walk():
            for recording in fresh:
                yield recording

    async def pages(self) -> AsyncIterator[RecordingPage]:
        """Yield every page as the server returned it, in order."""
        async for page, _fresh in self._walk():
            yield page

    async def _walk(self) -> AsyncIterator[tuple[RecordingPage, list[Recording]]]:
        seen: set[str] = set()

        def fresh_items(page: RecordingPage) -> list[Recording]:
            fresh = [r for r in page.data if r.id not in seen]
            seen.update(r.id for r in fresh)
            return fresh

        page_no = self._page_no
        page = await self._fetch(page_no)
        fresh = fresh_items(page)
        yield page, fresh
        if not fresh:
            return
        last = _last_page(page, page_no, self._per_page)
        window: deque[asyncio.Future[RecordingPage]] = deque()
        next_no = page_no + 1
        try:
            while True:
                while len(window) < self._prefetch and next_no <= last:
                    window.append(asyncio.ensure_future(self._fetch(next_no)))
                    next_no += 1
                if not window:
                    return
                page = await window.popleft()
                page_no += 1
                fresh = fresh_items(page)
                if not fresh:  # empty, or only repeats: nothing further can be trusted
                    return
                yield page, fresh
                last = _last_page(page, page_no, self._per_page)
        finally:
            # Runs on exhaustion, on error, and (via the event loop's async-generator
            # finaliser) when the caller breaks out early. It must not await: it may
            # run from a finaliser task that nothing waits for.
            for task in window:
                task.add_done_callback(_retrieve)
                task.cancel()


def _retrieve(task: asyncio.Future[RecordingPage]) -> None:
    """Mark an abandoned prefetch's outcome as seen, so asyncio does not log it."""
    if not task.cancelled():
        task.exception()
