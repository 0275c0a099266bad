"""The webhook handler as a framework-free ASGI 3 application.

A thin translation: ASGI ``http`` scopes become :meth:`WebhookHandler.respond`
calls (the body streamed from ``http.request`` messages, so the size limit
holds while it arrives), and the ASGI ``lifespan`` shutdown closes the handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, TypeAlias

from ._closing import AsyncCloseable

if TYPE_CHECKING:
    from ._webhook_core import WebhookAnswer
    from .webhooks import WebhookHandler

__all__ = ["WebhookASGIApp"]

# The shapes Starlette and asgiref use, so the app mounts without casts.
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]


class _DisconnectedError(Exception):
    """The sender went away before its body was complete."""


class _Body:
    """The request body as ``http.request`` messages bring it (``more_body`` until the end)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise _DisconnectedError
            self._done = not message.get("more_body", False)
            if chunk := message.get("body", b""):
                return bytes(chunk)
        raise StopAsyncIteration


class WebhookASGIApp(AsyncCloseable):
    """Serves a :class:`WebhookHandler` to any ASGI server or framework.

    Every ``POST`` it is given is a delivery, whatever the path (mount it where
    deliveries go); other methods get 405. It answers exactly as the aiohttp
    handler does. On the ASGI ``lifespan`` shutdown (uvicorn and other servers
    send it to the top-level app) it closes the handler, bounded by its
    ``shutdown_timeout``. Frameworks do not pass lifespan events to mounted
    apps: there, close it from the framework's lifespan (``async with``).
    """

    def __init__(self, handler: WebhookHandler) -> None:
        self.handler = handler

    async def close(self) -> None:
        """Let running callbacks finish, for at most the handler's ``shutdown_timeout``."""
        await self.handler.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI 3 entry point. Raises ``ValueError`` for scopes other than http and lifespan."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")
        if scope["method"] != "POST":
            await _answer(send, 405, "method not allowed", [(b"allow", b"POST")])
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            # The first of repeated headers counts, as in aiohttp's CIMultiDict.get.
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        try:
            answer: WebhookAnswer = await self.handler.respond(headers, _Body(receive))
        except _DisconnectedError:
            return  # nobody to answer, and nothing was remembered
        await _answer(send, answer.status, answer.text)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(
    send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
