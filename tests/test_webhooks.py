"""Webhook signatures, typed events, de-duplication, the key fetcher and the aiohttp handler."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from realtimekit_async import (
    InternalServerError,
    RealtimeKit,
    RecordingStatus,
    ValidationError,
    WebhookVerificationError,
)
from realtimekit_async.webhooks import (
    DeduplicationStore,
    Deduplicator,
    GenericEvent,
    RecordingStatusUpdate,
    RetryDelivery,
    TrackDownload,
    TrackFile,
    WebhookEvent,
    WebhookHandler,
    WebhookPayloadError,
    WebhookVerifier,
    delivery_headers,
    load_public_key,
    parse_event,
    verify_signature,
    webhook_handler,
)

from ._webhook_support import (
    RECORDING_ID,
    encode,
    key_document,
    private_key,
    public_pem,
    sign,
    signed_headers,
    status_update,
)

BODY = encode(status_update("UPLOADED"))

# -- signatures --------------------------------------------------------------------


def test_valid_signature_verifies() -> None:
    assert verify_signature(private_key().public_key(), BODY, sign(BODY))


def test_tampered_body_fails() -> None:
    tampered = BODY.replace(b"UPLOADED", b"ERRORED!")
    assert not verify_signature(private_key().public_key(), tampered, sign(BODY))


def test_reserialised_body_fails() -> None:
    # Same JSON, different bytes: only the raw body as received verifies.
    pretty = json.dumps(json.loads(BODY), indent=2).encode()
    assert not verify_signature(private_key().public_key(), pretty, sign(BODY))


def test_wrong_key_fails() -> None:
    assert not verify_signature(private_key(1).public_key(), BODY, sign(BODY))


@pytest.mark.parametrize("signature", ["", "not base64!!", "QUJD", "====="])
def test_malformed_signature_is_false_not_an_error(signature: str) -> None:
    assert not verify_signature(private_key().public_key(), BODY, signature)


def test_pem_text_is_accepted_as_key() -> None:
    assert verify_signature(public_pem(), BODY, sign(BODY))


def test_pem_with_literal_backslash_n_loads() -> None:
    flattened = public_pem().strip().replace("\n", "\\n")
    assert "\n" not in flattened
    key = load_public_key(flattened)
    assert key.public_numbers() == private_key().public_key().public_numbers()


def test_non_rsa_key_is_rejected() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValidationError, match="RSA"):
        load_public_key(pem)


def test_garbage_pem_is_rejected() -> None:
    with pytest.raises(ValidationError, match="public_key"):
        load_public_key("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")


# -- headers -------------------------------------------------------------------------


def test_rtk_headers_any_case() -> None:
    info = delivery_headers({"RTK-Signature": "sig", "Rtk-Uuid": "d1", "rtk-webhook-id": "w1"})
    assert (info.signature, info.delivery_id, info.webhook_id) == ("sig", "d1", "w1")


def test_legacy_dyte_headers() -> None:
    info = delivery_headers({"dyte-signature": "sig", "dyte-uuid": "d1", "dyte-webhook-id": "w1"})
    assert (info.signature, info.delivery_id, info.webhook_id) == ("sig", "d1", "w1")


def test_rtk_headers_win_over_dyte() -> None:
    info = delivery_headers({"dyte-signature": "old", "rtk-signature": "new"})
    assert info.signature == "new"


def test_missing_headers_are_none() -> None:
    info = delivery_headers({"content-type": "application/json", "rtk-signature": ""})
    assert (info.signature, info.delivery_id, info.webhook_id) == (None, None, None)


# -- typed events ----------------------------------------------------------------------


def test_status_update_is_typed() -> None:
    event = parse_event(BODY, delivery_id="d1", webhook_id="w1")
    assert isinstance(event, RecordingStatusUpdate)
    rec = event.recording
    assert rec.status is RecordingStatus.UPLOADED
    assert rec.file_size == 2044680  # sent as the string "2044680"
    assert rec.download_url == f"https://storage.example/{RECORDING_ID}.mp4?X-Signature=abc"
    assert rec.download_url_expiry == datetime(2025, 1, 9, 3, 4, 5, tzinfo=UTC)
    assert rec.room_uuid == "room-1"
    assert rec.key == RECORDING_ID
    assert rec.recording_duration == 62
    assert event.meeting is not None
    assert event.meeting.session_id == "sess-1"
    assert event.meeting.organized_by is not None
    assert event.meeting.organized_by.name == "Acme"
    assert (event.delivery_id, event.webhook_id) == ("d1", "w1")


def test_presigned_urls_stay_out_of_repr() -> None:
    event = parse_event(BODY)
    assert "X-Signature" not in repr(event)


def test_track_download_urls_become_a_tuple_of_layers() -> None:
    layers = [
        {
            "layer_name": "default",
            "download_urls": {"audio.mp3": {"download_url": "https://s/a.mp3"}},
        },
        {"layer_name": "screen", "download_urls": {}},
    ]
    event = parse_event(encode(status_update("UPLOADED", downloadUrl=layers)))
    assert isinstance(event, RecordingStatusUpdate)
    assert event.recording.download_url == (
        TrackDownload("default", {"audio.mp3": TrackFile("https://s/a.mp3")}),
        TrackDownload("screen", {}),
    )


def test_unknown_fields_and_status_are_tolerated() -> None:
    doc = status_update("TRANSCODING", brandNewField={"x": 1})
    doc["topLevelExtra"] = True
    event = parse_event(encode(doc))
    assert isinstance(event, RecordingStatusUpdate)
    assert event.recording.status == "TRANSCODING"


def test_recording_id_falls_back_to_id() -> None:
    doc = status_update("RECORDING")
    del doc["recording"]["recordingId"]
    event = parse_event(encode(doc))
    assert isinstance(event, RecordingStatusUpdate)
    assert event.recording.recording_id is None
    assert event.recording.key == RECORDING_ID


def test_other_events_are_generic_with_raw_payload() -> None:
    doc = {"event": "meeting.started", "meeting": {"id": "m1"}}
    event = parse_event(encode(doc), delivery_id="d2", webhook_id="w1")
    assert event == GenericEvent("meeting.started", doc, "d2", "w1")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"no_event": 1}',
        b'{"event": 5}',
        encode({"event": "recording.statusUpdate", "recording": {"status": "UPLOADED"}}),
        encode({"event": "recording.statusUpdate"}),
    ],
)
def test_bad_bodies_raise_payload_error(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        parse_event(body)


# -- de-duplication ------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_duplicate_is_detected() -> None:
    dedup = Deduplicator()
    assert isinstance(dedup, DeduplicationStore)
    assert await dedup.add_if_new("a")
    assert not await dedup.add_if_new("a")
    assert await dedup.add_if_new("b")
    assert "a" in dedup


async def test_dedup_entries_expire_after_ttl() -> None:
    clock = FakeClock()
    dedup = Deduplicator(ttl=60, clock=clock)
    assert await dedup.add_if_new("a")
    clock.now += 59.9
    assert not await dedup.add_if_new("a")
    clock.now += 0.2
    assert "a" not in dedup
    assert await dedup.add_if_new("a")  # expired: treated as new again
    assert not await dedup.add_if_new("a")


async def test_dedup_purges_expired_entries() -> None:
    clock = FakeClock()
    dedup = Deduplicator(ttl=10, clock=clock)
    for i in range(5):
        await dedup.add_if_new(f"old-{i}")
    clock.now += 11
    await dedup.add_if_new("new")
    assert len(dedup) == 1


async def test_dedup_memory_is_bounded() -> None:
    dedup = Deduplicator(max_entries=3)
    for key in "abcd":
        assert await dedup.add_if_new(key)
    assert len(dedup) == 3
    assert "a" not in dedup  # the oldest went first
    assert not await dedup.add_if_new("d")


async def test_forget_allows_redelivery() -> None:
    dedup = Deduplicator()
    await dedup.add_if_new("a")
    await dedup.forget("a")
    assert await dedup.add_if_new("a")


@pytest.mark.parametrize(
    "kwargs", [{"max_entries": 0}, {"max_entries": True}, {"ttl": 0}, {"ttl": -1.0}]
)
def test_dedup_arguments_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Deduplicator(**kwargs)


# -- the verifier and its key fetching -----------------------------------------------


class KeyServer:
    """Serves ``/.well-known/webhooks.json`` and counts how often it is asked."""

    def __init__(self) -> None:
        self.pem = public_pem(0)
        self.hits = 0
        self.status = 200
        self.delay = 0.0
        self.app = web.Application()
        self.app.router.add_get("/.well-known/webhooks.json", self.serve)

    async def serve(self, _request: web.Request) -> web.Response:
        self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response(
                {"success": False, "error": {"code": 1, "message": "down"}}, status=self.status
            )
        return web.json_response(key_document(self.pem))


@pytest.fixture
async def key_server() -> AsyncIterator[tuple[KeyServer, str]]:
    keys = KeyServer()
    async with TestServer(keys.app, host="127.0.0.1") as server:
        yield keys, str(server.make_url("/.well-known/webhooks.json"))


@pytest.fixture
async def fetching_verifier(key_server: tuple[KeyServer, str]) -> AsyncIterator[WebhookVerifier]:
    async with WebhookVerifier(key_url=key_server[1]) as verifier:
        yield verifier


async def test_static_key_verifies_and_parses() -> None:
    verifier = WebhookVerifier(public_pem())
    event = await verifier.parse(BODY, signed_headers(BODY, "d9"))
    assert isinstance(event, RecordingStatusUpdate)
    assert event.delivery_id == "d9"
    assert event.webhook_id == "webhook-1"
    assert verifier.fetch_count == 0


async def test_static_key_rejects_other_signers_without_fetching() -> None:
    verifier = WebhookVerifier(private_key().public_key())
    with pytest.raises(WebhookVerificationError, match="does not match"):
        await verifier.verify(BODY, signed_headers(BODY, which=1))
    assert verifier.fetch_count == 0


async def test_missing_signature_is_rejected() -> None:
    verifier = WebhookVerifier(public_pem())
    with pytest.raises(WebhookVerificationError, match="missing"):
        await verifier.verify(BODY, {"rtk-uuid": "d1"})


async def test_legacy_headers_verify() -> None:
    verifier = WebhookVerifier(public_pem())
    event = await verifier.parse(BODY, signed_headers(BODY, "d1", prefix="dyte"))
    assert event.delivery_id == "d1"


async def test_unverified_body_is_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    import realtimekit_async.webhooks as module

    real = module.parse_event

    def spy(body: bytes, **kwargs: Any) -> WebhookEvent:
        parsed.append(body)
        return real(body, **kwargs)

    monkeypatch.setattr(module, "parse_event", spy)
    verifier = WebhookVerifier(public_pem())
    with pytest.raises(WebhookVerificationError):
        await verifier.parse(b"not even json", signed_headers(BODY))
    assert parsed == []


async def test_key_is_fetched_once_and_cached(
    key_server: tuple[KeyServer, str], fetching_verifier: WebhookVerifier
) -> None:
    keys, _ = key_server
    for i in range(3):
        await fetching_verifier.verify(BODY, signed_headers(BODY, f"d{i}"))
    assert keys.hits == 1


async def test_first_requests_share_one_fetch(
    key_server: tuple[KeyServer, str], fetching_verifier: WebhookVerifier
) -> None:
    keys, _ = key_server
    keys.delay = 0.05
    await asyncio.gather(
        *(fetching_verifier.verify(BODY, signed_headers(BODY, f"d{i}")) for i in range(10))
    )
    assert keys.hits == 1


async def test_key_rotation_refetches_once(
    key_server: tuple[KeyServer, str], fetching_verifier: WebhookVerifier
) -> None:
    keys, _ = key_server
    await fetching_verifier.verify(BODY, signed_headers(BODY))
    keys.pem = public_pem(1)  # the sender rotates to key 1
    keys.delay = 0.05  # keep the refetch in flight while the others fail
    rotated = signed_headers(BODY, which=1)
    await asyncio.gather(*(fetching_verifier.verify(BODY, rotated) for _ in range(10)))
    assert keys.hits == 2  # the first fetch, plus exactly one refetch
    await fetching_verifier.verify(BODY, rotated)
    assert keys.hits == 2


async def test_forged_signature_refetch_then_cooldown(
    key_server: tuple[KeyServer, str],
) -> None:
    keys, url = key_server
    clock = FakeClock()
    async with WebhookVerifier(key_url=url, refetch_cooldown=30, clock=clock) as verifier:
        forged = signed_headers(BODY, which=2)
        with pytest.raises(WebhookVerificationError):
            await verifier.verify(BODY, forged)
        assert keys.hits == 2  # fetched, failed, refetched the same key
        for _ in range(5):
            with pytest.raises(WebhookVerificationError):
                await verifier.verify(BODY, forged)
        assert keys.hits == 2  # same key came back: no refetch during the cooldown
        clock.now += 31
        with pytest.raises(WebhookVerificationError):
            await verifier.verify(BODY, forged)
        assert keys.hits == 3


async def test_literal_newline_pem_from_the_key_url(
    key_server: tuple[KeyServer, str], fetching_verifier: WebhookVerifier
) -> None:
    keys, _ = key_server
    keys.pem = public_pem().replace("\n", "\\n")
    await fetching_verifier.verify(BODY, signed_headers(BODY))
    assert keys.hits == 1


async def test_key_url_failure_is_an_api_error(
    key_server: tuple[KeyServer, str], fetching_verifier: WebhookVerifier
) -> None:
    keys, _ = key_server
    keys.status = 500
    with pytest.raises(InternalServerError):
        await fetching_verifier.verify(BODY, signed_headers(BODY))


async def test_verifier_uses_the_clients_session(key_server: tuple[KeyServer, str]) -> None:
    keys, url = key_server
    seen: list[str] = []

    async def on_start(_s: Any, _ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        seen.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        RealtimeKit(api_token="t", account_id="a", app_id="b", session=session) as client,
    ):
        verifier = WebhookVerifier(client=client, key_url=url)
        await verifier.verify(BODY, signed_headers(BODY))
        await verifier.close()  # must not close the client's session
        assert not session.closed
    assert seen == [url]
    assert keys.hits == 1


def test_verifier_arguments_are_validated() -> None:
    with pytest.raises(ValidationError):
        WebhookVerifier(timeout=0)
    with pytest.raises(ValidationError):
        WebhookVerifier(refetch_cooldown=-1)
    with pytest.raises(ValidationError):
        WebhookVerifier("not a key")


# -- the handler (the behaviour per framework: test_webhook_receivers.py) ----------


async def serve(handler: WebhookHandler) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    handler.setup(app, "/hooks")
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def post(
    http: TestClient[web.Request, web.Application],
    body: bytes = BODY,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    async with http.post(
        "/hooks", data=body, headers=headers if headers is not None else signed_headers(body)
    ) as response:
        return response.status, await response.text()


async def test_handler_sync_callback_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[WebhookEvent] = []

    def callback(event: WebhookEvent) -> None:
        seen.append(event)
        if len(seen) == 2:
            raise RetryDelivery
        if len(seen) == 3:
            raise RuntimeError("bug in user code")

    http = await serve(webhook_handler(WebhookVerifier(public_pem()), callback))
    try:
        with caplog.at_level(logging.ERROR, logger="realtimekit_async.webhooks"):
            for delivery, answer in (("a", 200), ("b", 503), ("c", 200)):
                # A bug (c) is logged and acknowledged: a redelivery would fail the same way.
                body = encode(status_update("UPLOADED", recording_id=delivery))
                assert (await post(http, body, signed_headers(body, delivery)))[0] == answer
    finally:
        await http.close()
    assert len(seen) == 3
    assert "bug in user code" in caplog.text


async def test_handler_async_callback_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def callback(_event: WebhookEvent) -> None:
        raise RuntimeError("async bug")

    http = await serve(webhook_handler(WebhookVerifier(public_pem()), callback))
    try:
        with caplog.at_level(logging.ERROR, logger="realtimekit_async.webhooks"):
            assert (await post(http))[0] == 200
            await asyncio.sleep(0)
    finally:
        await http.close()
    assert "async bug" in caplog.text


async def test_handler_key_fetch_failure_is_503(key_server: tuple[KeyServer, str]) -> None:
    keys, url = key_server
    keys.status = 502
    clock = FakeClock()
    verifier = WebhookVerifier(key_url=url, refetch_cooldown=10, clock=clock)
    http = await serve(webhook_handler(verifier))
    try:
        assert (await post(http))[0] == 503  # our problem: let the sender retry
        keys.status = 200
        assert (await post(http))[0] == 503  # the failure holds for the cooldown ...
        assert keys.hits == 1
        clock.now += 11
        assert (await post(http))[0] == 200  # ... then the key URL is asked again
        assert keys.hits == 2
    finally:
        await http.close()
        await verifier.close()


async def test_handler_without_callback_acknowledges() -> None:
    http = await serve(webhook_handler(WebhookVerifier(public_pem())))
    try:
        assert await post(http) == (200, "ok")
    finally:
        await http.close()


def test_handler_arguments_are_validated() -> None:
    verifier = WebhookVerifier(public_pem())
    with pytest.raises(ValidationError):
        webhook_handler(verifier, max_body_size=0)
    with pytest.raises(ValidationError):
        webhook_handler(verifier, respond_within=-1)
    with pytest.raises(ValidationError):
        webhook_handler(verifier, shutdown_timeout=float("nan"))
