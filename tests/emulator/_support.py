"""Helpers shared by the emulator tests: HTTP calls and a webhook receiver."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
import attrs
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from realtimekit_async.emulator import Emulator

FIXED_START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FIXED_START_ISO = "2025-03-01T12:00:00.000Z"


def auth(emu: Emulator) -> dict[str, str]:
    """Authorization header for the emulator's token."""
    return {"Authorization": f"Bearer {emu.token}"}


@attrs.frozen
class Reply:
    """Status, decoded JSON (or text) and headers of one response."""

    status: int
    body: Any
    headers: CIMultiDictProxy[str]


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    emu: Emulator | None = None,
    **kwargs: Any,
) -> Reply:
    """Send a request (authorized when ``emu`` is given) and decode the response."""
    headers = dict(kwargs.pop("headers", {}))
    if emu is not None:
        headers.update(auth(emu))
    async with session.request(method, url, headers=headers, **kwargs) as resp:
        if resp.content_type == "application/json":
            body: Any = await resp.json()
        else:
            body = await resp.text()
        return Reply(resp.status, body, resp.headers)


async def start(
    session: aiohttp.ClientSession, emu: Emulator, meeting_id: str, **body: Any
) -> dict[str, Any]:
    """Start a recording and return its ``data`` (asserting 200, the documented status)."""
    reply = await call(
        session, "POST", emu.recordings_url, emu=emu, json={"meeting_id": meeting_id, **body}
    )
    assert reply.status == 200, reply.body
    data: dict[str, Any] = reply.body["data"]
    return data


async def control(
    session: aiohttp.ClientSession, emu: Emulator, recording_id: str, action: str
) -> Reply:
    """PUT an action on a recording."""
    return await call(
        session, "PUT", f"{emu.recordings_url}/{recording_id}", emu=emu, json={"action": action}
    )


async def get_recording(
    session: aiohttp.ClientSession, emu: Emulator, recording_id: str
) -> dict[str, Any]:
    """GET one recording's ``data`` (asserting 200)."""
    reply = await call(session, "GET", f"{emu.recordings_url}/{recording_id}", emu=emu)
    assert reply.status == 200, reply.body
    data: dict[str, Any] = reply.body["data"]
    return data


@attrs.frozen
class Received:
    """One webhook request as the receiver saw it."""

    body: bytes
    headers: CIMultiDict[str]


class Receiver:
    """A local webhook endpoint that records requests and answers scripted statuses."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[int] = []
        self.delay = 0.0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(await request.read(), CIMultiDict(request.headers)))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.script.pop(0) if self.script else 200
        return web.Response(status=status, text="ok")

    async def start(self) -> None:
        """Listen on an ephemeral port."""
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
