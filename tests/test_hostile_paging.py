"""Walks against hostile list servers (small aiohttp apps, independent of the emulator).

Each server keeps inventing pages; a walk must end with a typed error after a
bound derived from the first answer (or the documented ceiling), having
yielded what it read.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from realtimekit_async import PaginationError, RealtimeKit, RetryPolicy
from realtimekit_async._sansio import MAX_WALK_PAGES, last_page, walk_budget

from ._support import recording_json

Page = Callable[[int, int], dict[str, Any]]


def new_id(n: int) -> str:
    return str(uuid.UUID(int=n))


def growing_by_one(page_no: int, _per_page: int) -> dict[str, Any]:
    """One new id a page, and a total always one ahead of what was served."""
    return {
        "success": True,
        "data": [recording_json(id=new_id(page_no))],
        "paging": {"start_offset": page_no, "end_offset": page_no, "total_count": page_no + 1},
    }


def endless_full_pages(page_no: int, per_page: int) -> dict[str, Any]:
    """Full pages of new ids and no total at all."""
    first = (page_no - 1) * per_page
    return {
        "success": True,
        "data": [recording_json(id=new_id(first + i)) for i in range(per_page)],
        "paging": {},
    }


def growing_full_pages(page_no: int, per_page: int) -> dict[str, Any]:
    """Full pages of new ids and a total that always says there is one more page."""
    doc = endless_full_pages(page_no, per_page)
    doc["paging"] = {
        "start_offset": (page_no - 1) * per_page + 1,
        "end_offset": page_no * per_page,
        "total_count": (page_no + 1) * per_page,
    }
    return doc


class HostileServer:
    """A list endpoint on 127.0.0.1 answering every page from ``page``."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _list(self, request: web.Request) -> web.Response:
        self.requests += 1
        page_no = int(request.query["page_no"])
        per_page = int(request.query["per_page"])
        return web.json_response(self.page(page_no, per_page))

    async def __aenter__(self) -> HostileServer:
        app = web.Application()
        app.router.add_get("/client/v4/accounts/{a}/realtime/kit/{b}/recordings", self._list)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/client/v4"
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def drain(items: AsyncIterator[Any], into: list[Any]) -> None:
    """Collect everything a walk yields (kept when it then raises)."""
    async for item in items:
        into.append(item)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Page], Any]]:
    servers: list[HostileServer] = []

    async def start(page: Page) -> tuple[HostileServer, RealtimeKit]:
        server = await HostileServer(page).__aenter__()
        servers.append(server)
        client = RealtimeKit(
            api_token="t",
            account_id="acc",
            app_id="app",
            base_url=server.base_url,
            rate_limit=None,
            max_retries=RetryPolicy(max_retries=0),
        )
        clients.append(client)
        return server, client

    clients: list[RealtimeKit] = []
    yield start
    for client in clients:
        await client.close()
    for server in servers:
        await server.__aexit__()


@pytest.mark.parametrize("prefetch", [1, 8])
async def test_a_total_growing_by_one_every_page_ends_with_a_typed_error(
    serve: Any, prefetch: int
) -> None:
    server, client = await serve(growing_by_one)
    seen: list[Any] = []
    with pytest.raises(PaginationError, match="bound of 48") as info:
        await drain(client.recordings.list(per_page=100, prefetch=prefetch), seen)
    # The first answer said 2 recordings in pages of 1: 8 * 2 + 32 pages, then stop.
    assert info.value.pages == 48
    assert [rec.id for rec in seen] == [new_id(n) for n in range(1, 49)]
    assert server.requests <= 48 + prefetch


async def test_full_pages_without_a_total_end_at_max_pages(serve: Any) -> None:
    server, client = await serve(endless_full_pages)
    seen: list[Any] = []
    with pytest.raises(PaginationError, match="no total") as info:
        await drain(client.recordings.list(per_page=10, max_pages=30, prefetch=3), seen)
    assert info.value.pages == 30
    assert len({rec.id for rec in seen}) == 300
    assert server.requests <= 33


async def test_full_pages_with_an_ever_growing_total(serve: Any) -> None:
    _server, client = await serve(growing_full_pages)
    pages: list[Any] = []
    with pytest.raises(PaginationError, match="20 recordings in pages of 10"):
        await drain(client.recordings.list(per_page=10).pages(), pages)
    assert len(pages) == 8 * 2 + 32


def test_walk_budget() -> None:
    assert walk_budget(None) == MAX_WALK_PAGES == 10_000
    assert walk_budget(0) == 32
    assert walk_budget(200) == 1632
    assert walk_budget(5_000) == MAX_WALK_PAGES
    assert walk_budget(None, max_pages=7) == 7


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # (page_no, count, page_size, total, end_offset)
        ((1, 100, 100, 250, 100), 3),
        ((1, 100, 100, 250, None), 3),
        ((2, 100, 100, 250, 200), 3),
        ((3, 50, 100, 250, 250), 3),
        # 0-based offsets (end_offset 99) come to the same pages
        ((1, 100, 100, 250, 99), 3),
        # an end_offset beyond the total cannot end the walk early
        ((1, 100, 100, 250, 900), 3),
        ((1, 100, 100, None, None), 2),
        ((4, 99, 100, None, None), 4),
    ],
)
def test_last_page(args: tuple[int, int, int, int | None, int | None], expected: int) -> None:
    assert last_page(*args) == expected
