"""One behaviour table for every way of serving the webhook handler.

Each test runs three times, over real HTTP on 127.0.0.1: the aiohttp.web
handler, the ASGI app alone under uvicorn, and the ASGI app mounted in a
Starlette app under uvicorn. Servers are started and stopped by the tests; a
server's shutdown is what closes the handler (aiohttp ``on_shutdown``, the
ASGI lifespan, Starlette's lifespan).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import aiohttp
import pytest
import uvicorn
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from realtimekit_async.webhooks import (
    Deduplicator,
    RecordingStatusUpdate,
    RetryDelivery,
    WebhookASGIApp,
    WebhookEvent,
    WebhookHandler,
    WebhookVerifier,
    webhook_handler,
)

from ._webhook_support import encode, public_pem, signed_headers, status_update

BODY = encode(status_update("UPLOADED"))
FRAMEWORKS = ["aiohttp", "uvicorn", "starlette"]


class Post(Protocol):
    async def __call__(
        self, body: bytes = ..., headers: dict[str, str] | None = ..., *, method: str = ...
    ) -> tuple[int, str]: ...


@contextlib.asynccontextmanager
async def run_aiohttp(handler: WebhookHandler) -> AsyncIterator[str]:
    app = web.Application()
    handler.setup(app, "/hooks")
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def run_uvicorn(app: Any, path: str) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        http="h11",
        ws="none",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110  # uvicorn offers no event to wait on
                await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def starlette_app(hooks: WebhookASGIApp) -> Starlette:
    """Mounted as a user would: the framework's lifespan closes the webhook app."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with hooks:
            yield

    return Starlette(routes=[Mount("/hooks", app=hooks)], lifespan=lifespan)


def serve(framework: str, handler: WebhookHandler) -> contextlib.AbstractAsyncContextManager[str]:
    """The handler served by ``framework``; yields the URL deliveries go to."""
    if framework == "aiohttp":
        return run_aiohttp(handler)
    if framework == "uvicorn":
        return run_uvicorn(WebhookASGIApp(handler), "/hooks")
    return run_uvicorn(starlette_app(WebhookASGIApp(handler)), "/hooks/")


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Served = Callable[[WebhookHandler], contextlib.AbstractAsyncContextManager[Post]]


@pytest.fixture
def served(framework: str) -> Served:
    """``async with served(handler) as post:`` deliveries over HTTP; the server stops on exit."""

    @contextlib.asynccontextmanager
    async def run(handler: WebhookHandler) -> AsyncIterator[Post]:
        async with serve(framework, handler) as url, aiohttp.ClientSession() as http:

            async def post(
                body: bytes = BODY, headers: dict[str, str] | None = None, *, method: str = "POST"
            ) -> tuple[int, str]:
                sent = headers if headers is not None else signed_headers(body)
                async with http.request(method, url, data=body, headers=sent) as response:
                    return response.status, await response.text()

            yield post

    return run


class Recorder:
    """An event callback that records what it got; behaviour set per test."""

    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []
        self.raise_retry = False
        self.delay = 0.0
        self.done = asyncio.Event()

    async def __call__(self, event: WebhookEvent) -> None:
        self.events.append(event)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.done.set()
        if self.raise_retry:
            raise RetryDelivery


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def post(served: Served, recorder: Recorder) -> AsyncIterator[Post]:
    handler = webhook_handler(
        WebhookVerifier(public_pem()), recorder, max_body_size=4096, respond_within=0.2
    )
    async with served(handler) as post:
        yield post


def oversized() -> bytes:
    return encode(status_update("UPLOADED", padding="x" * 5000))


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    """The body sent chunked, without a Content-Length: the limit holds while it streams."""
    for i in range(0, len(body), 1000):
        yield body[i : i + 1000]


def tampered() -> tuple[bytes, dict[str, str]]:
    return BODY.replace(b"UPLOADED", b"ERRORED!"), signed_headers(BODY)


def unsigned() -> tuple[bytes, dict[str, str]]:
    headers = signed_headers(BODY)
    del headers["rtk-signature"]
    return BODY, headers


def html() -> tuple[bytes, dict[str, str]]:
    body = b"<html>hello</html>"
    return body, signed_headers(body)


# What each kind of delivery is answered; none of them is dispatched.
REJECTED: dict[str, tuple[Callable[[], tuple[Any, dict[str, str]]], int, str]] = {
    "missing signature": (unsigned, 401, "missing rtk-signature header"),
    "tampered body": (tampered, 401, "invalid signature"),
    "other signer": (lambda: (BODY, signed_headers(BODY, which=1)), 401, "invalid signature"),
    "text/plain": (
        lambda: (BODY, signed_headers(BODY) | {"Content-Type": "text/plain"}),
        400,
        "expected a JSON body",
    ),
    "signed, not JSON": (html, 400, "not a webhook event"),
    "signed JSON, no event": (
        lambda: (b'{"a":1}', signed_headers(b'{"a":1}')),
        400,
        "not a webhook event",
    ),
    "over max_body_size": (
        lambda: (oversized(), signed_headers(oversized())),
        413,
        "body too large",
    ),
    "over max_body_size, chunked": (
        lambda: (chunks(oversized()), signed_headers(oversized())),
        413,
        "body too large",
    ),
}


async def test_a_delivery_is_acknowledged_and_dispatched(post: Post, recorder: Recorder) -> None:
    assert await post() == (200, "ok")
    assert len(recorder.events) == 1
    event = recorder.events[0]
    assert isinstance(event, RecordingStatusUpdate)
    assert (event.delivery_id, event.webhook_id) == ("delivery-1", "webhook-1")


async def test_legacy_headers_are_accepted(post: Post, recorder: Recorder) -> None:
    assert await post(headers=signed_headers(BODY, "d-legacy", prefix="dyte")) == (200, "ok")
    assert recorder.events[0].delivery_id == "d-legacy"


async def test_bad_deliveries_are_rejected_and_not_dispatched(
    post: Post, recorder: Recorder
) -> None:
    answers = {}
    for case, (make, _, _) in REJECTED.items():
        body, headers = make()
        answers[case] = await post(body, headers)
    assert answers == {case: (status, text) for case, (_, status, text) in REJECTED.items()}
    assert recorder.events == []
    assert await post() == (200, "ok")  # the connection, and the handler, still work


async def test_other_methods_are_405(post: Post, recorder: Recorder) -> None:
    assert (await post(method="GET"))[0] == 405
    assert (await post(method="PUT"))[0] == 405
    assert recorder.events == []


async def test_a_replay_is_acknowledged_not_dispatched(post: Post, recorder: Recorder) -> None:
    assert await post() == (200, "ok")
    assert await post() == (200, "duplicate")
    # The same signed body under a fresh rtk-uuid is a replay, not a new event.
    assert await post(headers=signed_headers(BODY, "delivery-2")) == (200, "duplicate")
    other = encode(status_update("UPLOADING"))
    assert await post(other, signed_headers(other, "delivery-2")) == (200, "ok")
    assert len(recorder.events) == 2


async def test_retry_delivery_is_503_and_the_redelivery_is_dispatched(
    post: Post, recorder: Recorder
) -> None:
    recorder.raise_retry = True
    assert await post() == (503, "redelivery requested")
    recorder.raise_retry = False
    assert await post() == (200, "ok")  # the same delivery, dispatched again
    assert len(recorder.events) == 2


async def test_a_slow_callback_is_answered_202_and_cancelled_at_shutdown(
    served: Served, recorder: Recorder
) -> None:
    recorder.delay = 10.0
    handler = webhook_handler(
        WebhookVerifier(public_pem()), recorder, respond_within=0.05, shutdown_timeout=0.05
    )
    loop = asyncio.get_running_loop()
    async with served(handler) as post:
        started = loop.time()
        assert await post() == (202, "accepted")
        assert loop.time() - started < 2.0
        assert handler.pending == 1  # still running, and tracked
        stopping = loop.time()
    assert loop.time() - stopping < 3.0  # shutdown_timeout, not the callback's 10 s
    assert handler.pending == 0
    assert not recorder.done.is_set()


async def test_shutdown_lets_quick_callbacks_finish(served: Served, recorder: Recorder) -> None:
    recorder.delay = 0.1
    handler = webhook_handler(WebhookVerifier(public_pem()), recorder, respond_within=0)
    async with served(handler) as post:
        assert await post() == (202, "accepted")
    assert recorder.done.is_set()
    assert handler.pending == 0


async def test_pending_callbacks_are_bounded_with_a_503(served: Served) -> None:
    release = asyncio.Event()
    started: list[str] = []

    async def slow(event: WebhookEvent) -> None:
        started.append(event.delivery_id or "")
        await release.wait()

    handler = webhook_handler(
        WebhookVerifier(public_pem()), slow, max_pending=2, respond_within=0, shutdown_timeout=5
    )
    bodies = [encode(status_update("UPLOADED", recording_id=f"rec-{i}")) for i in range(4)]
    async with served(handler) as post:
        answers = [(await post(b, signed_headers(b, f"d{i}")))[0] for i, b in enumerate(bodies)]
        assert answers == [202, 202, 503, 503]
        release.set()
        await asyncio.gather(*handler._tasks)
        # Turned away unread and unremembered, so the sender's retry is dispatched.
        assert await post(bodies[2], signed_headers(bodies[2], "d2")) == (200, "ok")
    assert started == ["d0", "d1", "d2"]


async def test_an_unfetchable_key_is_503_so_the_sender_retries(served: Served) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/.well-known/webhooks.json"
    async with WebhookVerifier(key_url=url) as verifier, served(webhook_handler(verifier)) as post:
        assert await post() == (503, "cannot verify now")


class FailingStore:
    """A shared store that is down (say, Redis unreachable)."""

    async def add_if_new(self, key: str) -> bool:
        raise ConnectionError("redis is down")

    async def forget(self, key: str) -> None:
        raise ConnectionError("redis is down")


async def test_a_failing_store_is_503_and_nothing_is_dispatched(
    served: Served, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    handler = webhook_handler(WebhookVerifier(public_pem()), recorder, deduplicator=FailingStore())
    with caplog.at_level(logging.ERROR, logger="realtimekit_async.webhooks"):
        async with served(handler) as post:
            assert await post() == (503, "cannot check for duplicates now")
    assert recorder.events == []
    assert "redis is down" in caplog.text


class FlakyStore(Deduplicator):
    """Fails once, on the second key it is given (Redis dropping mid-delivery)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def add_if_new(self, key: str) -> bool:
        self.calls += 1
        if self.calls == 2:
            raise ConnectionError("redis dropped the connection")
        return await super().add_if_new(key)


async def test_a_store_failing_mid_delivery_forgets_what_it_kept(
    served: Served, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore()
    handler = webhook_handler(WebhookVerifier(public_pem()), recorder, deduplicator=store)
    with caplog.at_level(logging.ERROR, logger="realtimekit_async.webhooks"):
        async with served(handler) as post:
            assert await post() == (503, "cannot check for duplicates now")
            assert len(store) == 0  # the body digest it had kept is dropped again
            assert await post() == (200, "ok")  # so the retry is dispatched, not a "duplicate"
    assert len(recorder.events) == 1


async def test_replicas_sharing_a_store_dispatch_a_replay_once(framework: str) -> None:
    shared = Deduplicator()
    events: list[WebhookEvent] = []
    replicas = [
        webhook_handler(WebhookVerifier(public_pem()), events.append, deduplicator=shared)
        for _ in range(2)
    ]
    async with (
        serve(framework, replicas[0]) as first,
        serve(framework, replicas[1]) as second,
        aiohttp.ClientSession() as http,
    ):
        answers = []
        for url, delivery_id in ((first, "d1"), (second, "d1"), (second, "replay")):
            async with http.post(url, data=BODY, headers=signed_headers(BODY, delivery_id)) as r:
                answers.append((r.status, await r.text()))
    assert answers == [(200, "ok"), (200, "duplicate"), (200, "duplicate")]
    assert [e.delivery_id for e in events] == ["d1"]


async def test_a_forged_uuid_naming_a_body_digest_suppresses_nothing(
    post: Post, recorder: Recorder
) -> None:
    other = encode(status_update("UPLOADING"))
    forged = "body:" + hashlib.sha256(other).hexdigest()
    assert await post(BODY, signed_headers(BODY, forged)) == (200, "ok")
    assert await post(other, signed_headers(other, "later")) == (200, "ok")
    assert len(recorder.events) == 2


# -- ASGI specifics ----------------------------------------------------------------------


async def test_starlette_route_serves_the_exact_path(recorder: Recorder) -> None:
    hooks = WebhookASGIApp(webhook_handler(WebhookVerifier(public_pem()), recorder))
    app = Starlette(routes=[Route("/webhooks", hooks, methods=["POST"])])
    async with (
        run_uvicorn(app, "/webhooks") as url,
        aiohttp.ClientSession() as http,
        http.post(url, data=BODY, headers=signed_headers(BODY)) as response,
    ):
        assert (response.status, await response.text()) == (200, "ok")
    await hooks.close()
    assert len(recorder.events) == 1


Message = MutableMapping[str, Any]


def asgi_receive(messages: list[Message]) -> Callable[[], Awaitable[Message]]:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


def http_scope(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


async def test_asgi_body_arrives_in_many_messages(recorder: Recorder) -> None:
    hooks = WebhookASGIApp(webhook_handler(WebhookVerifier(public_pem()), recorder))
    parts = [BODY[i : i + 7] for i in range(0, len(BODY), 7)]
    messages: list[Message] = [
        {"type": "http.request", "body": p, "more_body": True} for p in parts
    ]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await hooks(http_scope(signed_headers(BODY)), asgi_receive(messages), send)
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"ok"
    assert len(recorder.events) == 1


async def test_asgi_stops_reading_once_the_limit_is_passed(recorder: Recorder) -> None:
    hooks = WebhookASGIApp(
        webhook_handler(WebhookVerifier(public_pem()), recorder, max_body_size=100)
    )
    received = 0

    async def endless() -> Message:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b"x" * 40, "more_body": True}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await hooks(http_scope(signed_headers(BODY)), endless, send)
    assert sent[0]["status"] == 413
    assert received == 3  # 120 bytes > 100: nothing more is read


async def test_asgi_disconnect_mid_body_answers_nothing_and_remembers_nothing(
    recorder: Recorder,
) -> None:
    dedup = Deduplicator()
    hooks = WebhookASGIApp(
        webhook_handler(WebhookVerifier(public_pem()), recorder, deduplicator=dedup)
    )
    messages: list[Message] = [
        {"type": "http.request", "body": BODY[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await hooks(http_scope(signed_headers(BODY)), asgi_receive(messages), send)
    assert sent == []
    assert len(dedup) == 0
    assert recorder.events == []


async def test_asgi_refuses_websocket_scopes() -> None:
    hooks = WebhookASGIApp(webhook_handler(WebhookVerifier(public_pem())))

    async def send(_message: Message) -> None:
        raise AssertionError("nothing may be sent")

    with pytest.raises(ValueError, match="websocket"):
        await hooks({"type": "websocket"}, asgi_receive([]), send)


@settings(max_examples=50, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12),
    limit=st.integers(min_value=len(BODY) - 20, max_value=len(BODY) + 20),
)
def test_asgi_answers_alike_however_the_body_is_split(cuts: list[int], limit: int) -> None:
    """Any split (empty messages included) is one body; the limit holds at every split."""
    bounds = [0, *sorted(cuts), len(BODY)]
    parts = [BODY[a:b] for a, b in itertools.pairwise(bounds)]
    messages: list[Message] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    events: list[WebhookEvent] = []
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def scenario() -> None:
        handler = webhook_handler(WebhookVerifier(public_pem()), events.append, max_body_size=limit)
        await WebhookASGIApp(handler)(
            http_scope(signed_headers(BODY)), asgi_receive(messages), send
        )

    asyncio.run(scenario())
    if len(BODY) <= limit:
        assert (sent[0]["status"], sent[1]["body"]) == (200, b"ok")
        assert len(events) == 1
    else:
        assert (sent[0]["status"], sent[1]["body"]) == (413, b"body too large")
        assert events == []
