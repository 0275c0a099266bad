"""Hostile servers, written apart from the emulator: absurd headers, huge bodies, echoes.

Each test reproduces an attack from issue 11 against a mock API (aiointercept)
or a small aiohttp.web app on 127.0.0.1, and checks the typed outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import math
import re
import traceback
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from realtimekit_async import (
    APIResponseTooLargeError,
    APIResponseValidationError,
    APIStatusError,
    RealtimeKit,
    RetryPolicy,
    ValidationError,
)
from realtimekit_async._config import DEFAULT_MAX_RESPONSE_SIZE
from realtimekit_async._sansio import retry_delay, server_delay
from realtimekit_async.export import export_recordings
from realtimekit_async.webhooks import (
    Deduplicator,
    WebhookEvent,
    WebhookHandler,
    WebhookPayloadError,
    WebhookVerifier,
    parse_event,
    webhook_handler,
)

from ._support import ACCOUNT, RECORDINGS, TOKEN, eventually, ok, recording_json, sent
from ._webhook_support import encode, key_document, public_pem, signed_headers, status_update

REC_ID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
LISTING = re.compile(re.escape(RECORDINGS) + r"\?.*")

# -- item 2: a Retry-After no calendar can hold --------------------------------------

OVERFLOWING_DATE = "Fri, 01 Jan 99999999999 00:00:00 GMT"
UNUSABLE_RETRY_AFTER = [
    OVERFLOWING_DATE,
    "Fri, 01 Jan 99999999999 00:00:00 +2359",
    "Fri, 32 Jan 2025 00:00:00 GMT",
    "1e999",
    "nan",
    "-5",
    "soon",
    "",
]


@given(st.text(), st.text())
def test_any_retry_after_header_is_a_delay_or_nothing(seconds: str, millis: str) -> None:
    for headers in ({"retry-after": seconds}, {"retry-after-ms": millis}, {}):
        delay = server_delay(headers)
        assert delay is None or delay >= 0
        assert delay is None or math.isfinite(delay)
        # Waited for, or (over max_server_delay) not retried: a decision, never an exception.
        retry_delay(RetryPolicy(), 0, idempotent=True, status=429, headers=headers)


@pytest.mark.parametrize("value", UNUSABLE_RETRY_AFTER)
def test_unusable_retry_after_falls_back_to_backoff(value: str) -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0)
    assert server_delay({"retry-after": value}) is None
    assert retry_delay(policy, 1, idempotent=True, status=503, headers={"retry-after": value}) == 2


async def _collect(paginator: Any) -> list[Any]:
    return [r async for r in paginator]


CALLS: dict[str, Callable[[RealtimeKit], Awaitable[Any]]] = {
    "get": lambda c: c.recordings.get(REC_ID),
    "list": lambda c: _collect(c.recordings.list()),
    "start": lambda c: c.recordings.start("m1"),
    "wait_for": lambda c: c.recordings.wait_for(REC_ID, "INVOKED", timeout=5),
}


@pytest.mark.parametrize("call", CALLS)
async def test_overflowing_retry_after_is_retried_with_backoff(
    api: Any, client: RealtimeKit, call: str
) -> None:
    throttled = {"status": 429, "payload": {}, "headers": {"Retry-After": OVERFLOWING_DATE}}
    if call == "list":
        api.get(LISTING, **throttled)
        api.get(LISTING, payload=ok([recording_json()], paging={"total_count": 1}))
    elif call == "start":
        api.post(RECORDINGS, **throttled)
        api.post(RECORDINGS, payload=ok(recording_json()))
    else:
        api.get(f"{RECORDINGS}/{REC_ID}", **throttled)
        api.get(f"{RECORDINGS}/{REC_ID}", payload=ok(recording_json()))
    await CALLS[call](client)
    assert len(sent(api)) == 2


async def test_export_retries_a_download_with_an_overflowing_retry_after(
    api: Any, client: RealtimeKit, tmp_path: Path
) -> None:
    url = "https://storage.example/files/r1/video?X-Signature=SECRET"
    doc = recording_json(id=REC_ID, status="UPLOADED", download_url=url, file_size=5)
    api.get(LISTING, payload=ok([doc], paging={"total_count": 1}))
    storage = re.compile(r"https://storage\.example/.*")
    api.get(storage, status=503, body=b"busy", headers={"Retry-After": OVERFLOWING_DATE})
    api.get(storage, body=b"hello")
    report = await export_recordings(client, tmp_path)
    assert [e.recording_id for e in report.exported] == [REC_ID]
    assert report.failed == ()


# -- item 3: settings that end up in a header ----------------------------------------


@pytest.mark.parametrize(
    "token", ["tok\r\nX-Injected: 1", "tok\nen", "tok\ren", "tok en", "tok\x00", "tök"]
)
def test_a_token_that_cannot_be_a_header_is_refused_at_construction(token: str) -> None:
    with pytest.raises(ValidationError) as info:
        RealtimeKit(api_token=token, account_id=ACCOUNT)
    assert info.value.field == "api_token"
    assert token not in str(info.value)


def test_a_token_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", f"{TOKEN}\r\n")
    with pytest.raises(ValidationError, match="api_token"):
        RealtimeKit(account_id=ACCOUNT)


# -- item 1: answers too large to hold -----------------------------------------------

MiB = 1 << 20
ENVELOPE_START = b'{"success": true, "data": "'


@contextlib.asynccontextmanager
async def serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A one-handler aiohttp.web app on 127.0.0.1 (every path); yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url(""))
    finally:
        await server.close()


def local_client(base_url: str, **options: Any) -> RealtimeKit:
    return RealtimeKit(
        api_token=TOKEN,
        account_id=ACCOUNT,
        app_id="app456",
        base_url=base_url,
        rate_limit=None,
        max_retries=RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002),
        **options,
    )


async def stream(
    request: web.Request,
    chunks: Iterable[bytes],
    sent: list[int],
    response: web.StreamResponse | None = None,
) -> web.StreamResponse:
    """Send ``chunks`` until the client hangs up, appending the bytes sent to ``sent``."""
    if response is None:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    sent.append(0)
    with contextlib.suppress(ConnectionError):
        for chunk in chunks:
            await response.write(chunk)
            sent[-1] += len(chunk)
    return response


def endless(limit: int = 256 * MiB) -> Iterator[bytes]:
    """A body that looks like an envelope and goes on (up to ``limit``, so the test ends)."""
    yield ENVELOPE_START
    for _ in range(limit // (64 * 1024)):
        yield b"a" * (64 * 1024)


async def test_an_endless_chunked_answer_stops_at_the_default_bound() -> None:
    sent: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream(request, endless(), sent)

    async with serve(handler) as base, local_client(base) as client:
        with pytest.raises(APIResponseTooLargeError) as info:
            await client.recordings.get(REC_ID)
    assert info.value.limit == DEFAULT_MAX_RESPONSE_SIZE == 8 * MiB
    assert info.value.status == 200
    assert info.value.possibly_applied  # a 2xx: the server did it, however long the answer
    assert isinstance(info.value, APIResponseValidationError)
    # One try, and it stopped reading early (socket buffers hold a few MiB more).
    assert len(sent) == 1
    assert sent[0] < 64 * MiB


async def test_a_declared_length_past_the_bound_fails_before_reading() -> None:
    sent: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 500_000_000
        return await stream(request, endless(64 * MiB), sent, response)

    async with serve(handler) as base, local_client(base, max_response_size=MiB) as client:
        with pytest.raises(APIResponseTooLargeError, match="larger than 1048576 bytes"):
            await client.recordings.get(REC_ID)
    assert len(sent) == 1
    assert sent[0] < 64 * MiB


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_is_counted_inflated(encoding: str) -> None:
    inflated = ENVELOPE_START + b"a" * (16 * MiB) + b'"}'
    bomb = gzip.compress(inflated, 1) if encoding == "gzip" else zlib.compress(inflated, 1)
    assert len(bomb) < 100_000  # small on the wire, far past the bound inflated

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": encoding}
        )

    async with serve(handler) as base, local_client(base, max_response_size=MiB) as client:
        with pytest.raises(APIResponseTooLargeError) as info:
            await client.recordings.get(REC_ID)
    assert info.value.limit == MiB


async def test_an_answer_within_a_configured_bound_is_read() -> None:
    body = orjson.dumps(ok(recording_json(id=REC_ID)))

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip"})

    async with serve(handler) as base:
        async with local_client(base, max_response_size=len(body)) as client:
            assert (await client.recordings.get(REC_ID)).id == REC_ID
        async with local_client(base, max_response_size=len(body) - 1) as client:
            with pytest.raises(APIResponseTooLargeError):
                await client.recordings.get(REC_ID)


def test_the_bound_is_validated() -> None:
    with pytest.raises(ValidationError, match="max_response_size"):
        RealtimeKit(api_token=TOKEN, account_id=ACCOUNT, max_response_size=0)


async def test_the_webhook_key_answer_is_bounded() -> None:
    sent: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream(request, endless(), sent)

    async with serve(handler) as base, WebhookVerifier(key_url=base + "/key") as verifier:
        with pytest.raises(APIResponseTooLargeError):
            await verifier.public_key()
    assert sent[0] < 64 * MiB


# -- item 16: secrets in exceptions, chained causes and logs -------------------------

SIGNED_URL = "https://bucket.example/r.mp4?X-Amz-Credential=AKIA&X-Amz-Signature=5ec7e75ig"
SECRETS = ("5ec7e75ig", "AKIA", TOKEN)


def everything_shown(exc: BaseException) -> str:
    """All a logged traceback or a repr of ``exc`` and its chain could show."""
    shown = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        shown += [repr(seen), str(seen), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(shown)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def test_a_shape_error_chains_no_presigned_signature(api: Any, client: RealtimeKit) -> None:
    api.get(f"{RECORDINGS}/{REC_ID}", payload=ok(recording_json(file_size=SIGNED_URL)))
    with pytest.raises(APIResponseValidationError) as info:
        await client.recordings.get(REC_ID)
    assert "https://bucket.example/r.mp4?…" in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert_no_secret(everything_shown(info.value))


async def test_a_non_json_answer_chains_no_body(api: Any, client: RealtimeKit) -> None:
    api.get(f"{RECORDINGS}/{REC_ID}", body=f"<a href='{SIGNED_URL}'>".encode())
    with pytest.raises(APIResponseValidationError, match="not JSON") as info:
        await client.recordings.get(REC_ID)
    assert info.value.__context__ is None
    assert_no_secret(everything_shown(info.value))


@pytest.mark.parametrize(
    ("status", "shape"),
    [(400, "realtimekit"), (401, "v4"), (502, "html"), (200, "success-false")],
)
async def test_a_server_echoing_request_headers_never_shows_the_token(
    status: int, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        echo = f"you sent {dict(request.headers)} and token {TOKEN} for {SIGNED_URL}"
        if shape == "html":
            return web.Response(status=status, text=f"<pre>{echo}</pre>", content_type="text/html")
        if shape == "v4":
            doc: dict[str, Any] = {"success": False, "errors": [{"code": 1, "message": echo}]}
        else:
            doc = {"success": False, "error": {"code": 2, "message": echo}}
        return web.json_response(doc, status=status)

    caplog.set_level(logging.DEBUG, logger="realtimekit_async")
    async with serve(handler) as base, local_client(base) as client:
        with pytest.raises(APIStatusError) as info:
            await client.recordings.get(REC_ID)
    assert info.value.status == status
    assert "Bearer [redacted]" in str(info.value)
    assert_no_secret(everything_shown(info.value))
    assert_no_secret(info.value.body.decode())
    assert_no_secret(caplog.text)


def test_a_webhook_payload_error_shows_no_signature() -> None:
    body = encode(status_update("UPLOADED", fileSize=SIGNED_URL, downloadUrl=SIGNED_URL))
    body = body.replace(
        b'"event"', b'"startedTime":{"when":"' + SIGNED_URL.encode() + b'"},"event"'
    )
    with pytest.raises(WebhookPayloadError) as info:
        parse_event(body)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert_no_secret(everything_shown(info.value))


# -- items 2, 12, 13, 14: webhooks ----------------------------------------------------

WEBHOOK_BODY = encode(status_update("UPLOADED"))
KEY_PATH = "/.well-known/webhooks.json"


@contextlib.asynccontextmanager
async def webhook_app(
    handler: WebhookHandler,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The handler on ``POST /hooks`` of an app on 127.0.0.1, shut down on exit."""
    app = web.Application()
    handler.setup(app, "/hooks")
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        yield http


async def deliver(
    http: TestClient[web.Request, web.Application],
    body: bytes = WEBHOOK_BODY,
    delivery_id: str = "d-1",
    *,
    which: int = 0,
) -> int:
    async with http.post(
        "/hooks", data=body, headers=signed_headers(body, delivery_id, which=which)
    ) as r:
        return r.status


class KeyURL:
    """A hostile key URL: counts fetches; can fail, hang, or serve a new key every time."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.hits = 0
        self.release = asyncio.Event()

    async def answer(self, _request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.mode == "hang":
            await self.release.wait()
        if self.mode == "overflowing-503":
            return web.json_response({}, status=503, headers={"Retry-After": OVERFLOWING_DATE})
        if self.mode == "fail":
            return web.json_response({"success": False}, status=500)
        which = 0 if self.mode == "good" else self.hits % 2 + 1  # "rotating": keys 1, 2, 1, ...
        return web.json_response(key_document(public_pem(which)))


@contextlib.asynccontextmanager
async def key_url(mode: str) -> AsyncIterator[tuple[KeyURL, str]]:
    keys = KeyURL(mode)
    try:
        async with serve(keys.answer) as base:
            yield keys, base + KEY_PATH
    finally:
        keys.release.set()


async def test_a_key_url_answering_an_overflowing_retry_after_is_a_503() -> None:
    async with (
        key_url("overflowing-503") as (_, url),
        WebhookVerifier(key_url=url) as verifier,
        webhook_app(webhook_handler(verifier)) as http,
    ):
        assert await deliver(http) == 503


async def test_a_replay_with_fresh_uuids_is_dispatched_once() -> None:
    events: list[WebhookEvent] = []
    handler = webhook_handler(WebhookVerifier(public_pem()), events.append)
    async with webhook_app(handler) as http:
        answers = [await deliver(http, delivery_id=f"replay-{i}") for i in range(50)]
        other = encode(status_update("UPLOADING"))
        assert await deliver(http, other, "genuine-2") == 200
    assert answers == [200] * 50
    assert [e.delivery_id for e in events] == ["replay-0", "genuine-2"]


async def test_replays_do_not_push_genuine_keys_out_of_the_deduplicator() -> None:
    dedup = Deduplicator(max_entries=4)
    events: list[WebhookEvent] = []
    handler = webhook_handler(WebhookVerifier(public_pem()), events.append, deduplicator=dedup)
    async with webhook_app(handler) as http:
        assert await deliver(http, delivery_id="genuine") == 200
        for i in range(100):
            assert await deliver(http, delivery_id=f"replay-{i}") == 200
        assert len(dedup) == 2  # the genuine body digest and uuid; replays stored nothing
        assert await deliver(http, delivery_id="genuine") == 200
    assert [e.delivery_id for e in events] == ["genuine"]


@pytest.mark.parametrize("mode", ["fail", "rotating"])
async def test_forgeries_cannot_buy_a_key_fetch_each(mode: str) -> None:
    async with (
        key_url(mode) as (keys, url),
        WebhookVerifier(key_url=url) as verifier,
        webhook_app(webhook_handler(verifier)) as http,
    ):
        # Signed with key 3, which the key URL never serves.
        answers = [await deliver(http, delivery_id=f"forged-{i}", which=3) for i in range(30)]
    assert set(answers) == ({503} if mode == "fail" else {401})
    assert keys.hits == (1 if mode == "fail" else 2)  # the first fetch (+ one refetch)
    assert verifier.fetch_count == keys.hits


async def test_a_hanging_key_url_holds_deliveries_for_one_timeout_not_one_each() -> None:
    async with (
        key_url("hang") as (keys, url),
        WebhookVerifier(key_url=url, timeout=0.5) as verifier,
        webhook_app(webhook_handler(verifier)) as http,
        asyncio.timeout(5),  # serialised, 20 deliveries would take 20 timeouts (10 s)
    ):
        first = await asyncio.gather(*(deliver(http, delivery_id=f"d{i}") for i in range(20)))
        # During the cooldown: no fetch, no wait.
        then = await asyncio.gather(*(deliver(http, delivery_id=f"e{i}") for i in range(20)))
    assert first == then == [503] * 20
    assert keys.hits == 1


# Bounded pending callbacks (503): test_webhook_receivers.py, under every framework.


async def test_close_is_bounded_when_a_callback_swallows_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn(_event: WebhookEvent) -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    handler = webhook_handler(
        WebhookVerifier(public_pem()), stubborn, respond_within=0, shutdown_timeout=0.1
    )
    try:
        async with webhook_app(handler) as http:
            assert await deliver(http) == 202
            async with asyncio.timeout(5):  # shutdown_timeout + the 1 s grace, not forever
                await handler.close()
        assert handler.pending == 1
        assert "ignored cancellation" in caplog.text
    finally:
        release.set()
    await eventually(lambda: handler.pending == 0)


@pytest.mark.parametrize(
    "base_url",
    ["https://api.example/v4\r\nX-Injected: 1", "https://api.exa\nmple/v4", " https://a.example"],
)
def test_a_base_url_with_line_breaks_is_refused_not_silently_changed(base_url: str) -> None:
    with pytest.raises(ValidationError) as info:
        RealtimeKit(api_token=TOKEN, account_id=ACCOUNT, base_url=base_url)
    assert info.value.field == "base_url"
