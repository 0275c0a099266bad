"""Webhook deliveries: payload, signatures, headers, retries and delivery faults."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from realtimekit_async.emulator import Emulator, WebhookFaults, verify_webhook_signature
from realtimekit_async.emulator.pytest_plugin import EmulatorFactory

from .._support import eventually
from ._support import Receiver, call, control, get_recording, start


def verify(pem: str, body: bytes, signature: str) -> None:
    """Raise InvalidSignature unless ``signature`` signs ``body`` under ``pem``."""
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())


async def run_to_uploaded(
    emu: Emulator, session: aiohttp.ClientSession, meeting: str = "m", **body: Any
) -> str:
    """Start, record 20 s, stop and upload, draining webhooks after each step."""
    rec = await start(session, emu, meeting, **body)
    emu.advance(2)
    await emu.wait_for_webhooks()
    emu.advance(20)
    await control(session, emu, rec["id"], "stop")
    await emu.wait_for_webhooks()
    emu.advance(3)
    await emu.wait_for_webhooks()
    return str(rec["id"])


async def test_status_updates_are_signed_and_camel_case(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(webhook_urls=[receiver.url])
    rid = await run_to_uploaded(emu, session, audio_config={"codec": "AAC"})
    pem = (await call(session, "GET", emu.webhook_keys_url)).body["data"]["publicKey"]
    statuses = []
    for got in receiver.received:
        verify(pem, got.body, got.headers["rtk-signature"])
        assert got.headers["Content-Type"] == "application/json"
        assert got.headers["rtk-webhook-id"] == emu.webhook_id(receiver.url)
        payload = json.loads(got.body)
        assert payload["event"] == "recording.statusUpdate"
        statuses.append(payload["recording"]["status"])
    assert statuses == ["RECORDING", "UPLOADING", "UPLOADED"]
    uuids = [got.headers["rtk-uuid"] for got in receiver.received]
    assert len(set(uuids)) == 3

    final = json.loads(receiver.received[-1].body)
    api = await get_recording(session, emu, rid)
    rec = final["recording"]
    assert set(rec) == {
        "id",
        "recordingId",
        "status",
        "downloadUrl",
        "audioDownloadUrl",
        "downloadUrlExpiry",
        "startedTime",
        "stoppedTime",
        "fileSize",
        "outputFileName",
        "meetingId",
        "recordingDuration",
        "organizationId",
        "roomUUID",
    }
    assert rec["id"] == rec["recordingId"] == rid
    assert rec["fileSize"] == str(api["file_size"])
    assert rec["downloadUrl"] == api["download_url"]
    assert rec["audioDownloadUrl"] == api["audio_download_url"]
    assert rec["downloadUrlExpiry"] == api["download_url_expiry"]
    assert rec["stoppedTime"] == api["stopped_time"]
    assert rec["recordingDuration"] == 20
    assert rec["meetingId"] == "m"
    assert rec["organizationId"] == emu.app_id
    meeting = final["meeting"]
    assert set(meeting) == {
        "id",
        "sessionId",
        "title",
        "roomName",
        "status",
        "createdAt",
        "startedAt",
        "endedAt",
        "organizedBy",
    }
    assert meeting["sessionId"] == api["session_id"]
    assert meeting["status"] == "ENDED"
    assert meeting["organizedBy"] == {"id": emu.app_id, "name": "emulator-app"}
    first = json.loads(receiver.received[0].body)
    assert first["recording"]["fileSize"] is None
    assert first["meeting"]["status"] == "LIVE"
    assert [d.status_code for d in emu.webhook_deliveries] == [200, 200, 200]
    assert verify_webhook_signature(pem, got.body, got.headers["rtk-signature"])
    assert not verify_webhook_signature(pem, got.body + b" ", got.headers["rtk-signature"])


async def test_errored_and_paused_statuses(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(
        webhook_urls=[receiver.url],
        webhook_statuses=("RECORDING", "PAUSED", "UPLOADING", "UPLOADED", "ERRORED"),
    )
    rec = await start(session, emu, "m")
    emu.advance(3)
    await control(session, emu, rec["id"], "pause")
    await control(session, emu, rec["id"], "stop")
    await emu.wait_for_webhooks()
    statuses = sorted(json.loads(r.body)["recording"]["status"] for r in receiver.received)
    assert statuses == ["ERRORED", "PAUSED", "RECORDING"]


async def test_legacy_headers(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(webhook_urls=[receiver.url], legacy_headers=True)
    await start(session, emu, "m")
    emu.advance(2)
    await emu.wait_for_webhooks()
    (got,) = receiver.received
    assert "rtk-signature" not in got.headers
    assert "rtk-uuid" not in got.headers
    verify(emu.webhook_public_key_pem, got.body, got.headers["dyte-signature"])
    assert got.headers["dyte-uuid"] == emu.webhook_deliveries[0].uuid
    assert got.headers["dyte-webhook-id"] == emu.webhook_id(receiver.url)


async def test_retries_5xx_with_same_uuid(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(webhook_urls=[receiver.url], webhook_backoff=0.01)
    receiver.script = [503, 500]
    await start(session, emu, "m")
    emu.advance(2)
    await emu.wait_for_webhooks()
    assert [d.status_code for d in emu.webhook_deliveries] == [503, 500, 200]
    assert [d.attempt for d in emu.webhook_deliveries] == [1, 2, 3]
    assert len({r.headers["rtk-uuid"] for r in receiver.received}) == 1
    assert len(receiver.received) == 3


async def test_no_retry_on_4xx(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(webhook_urls=[receiver.url], webhook_backoff=0.01)
    receiver.script = [410]
    await start(session, emu, "m")
    emu.advance(2)
    await emu.wait_for_webhooks()
    assert [d.status_code for d in emu.webhook_deliveries] == [410]


async def test_network_errors_are_retried_up_to_the_limit(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    dead = "http://127.0.0.1:9/hook"  # discard port: connection refused
    emu = await make_emu(webhook_urls=[dead], webhook_backoff=0.01, webhook_max_attempts=3)
    await start(session, emu, "m")
    emu.advance(2)
    await emu.wait_for_webhooks()
    attempts = emu.webhook_deliveries
    assert [d.attempt for d in attempts] == [1, 2, 3]
    assert all(d.status_code is None and d.error for d in attempts)


async def test_duplicate_and_drop_faults(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(
        webhook_urls=[receiver.url], webhook_faults=WebhookFaults(duplicate_rate=1.0)
    )
    await start(session, emu, "m")
    emu.advance(2)
    await emu.wait_for_webhooks()
    assert len(receiver.received) == 2
    assert receiver.received[0].body == receiver.received[1].body
    assert receiver.received[0].headers["rtk-uuid"] == receiver.received[1].headers["rtk-uuid"]
    assert [d.duplicate for d in emu.webhook_deliveries] == [False, True]

    dropper = await make_emu(
        webhook_urls=[receiver.url], webhook_faults=WebhookFaults(drop_rate=1.0)
    )
    await start(session, dropper, "m")
    dropper.advance(2)
    await dropper.wait_for_webhooks()
    assert len(receiver.received) == 2  # nothing new arrived
    (dropped,) = dropper.webhook_deliveries
    assert dropped.dropped
    assert dropped.status_code is None


async def test_delay_fault_reorders(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(
        webhook_urls=[receiver.url],
        webhook_faults=WebhookFaults(seed=4, delay_rate=0.5, delay_seconds=0.2),
    )
    order = ("RECORDING", "UPLOADING", "UPLOADED")
    meetings: list[str] = []
    for i in range(4):
        rec = await start(session, emu, f"m{i}")
        meetings.append(rec["id"])
        emu.advance(30)  # RECORDING
        await control(session, emu, rec["id"], "stop")
        emu.advance(3)  # UPLOADING, then UPLOADED
    await emu.wait_for_webhooks()
    delivered = {d.uuid: d for d in emu.webhook_deliveries}
    assert len(delivered) == 12

    def emitted_rank(uuid: str) -> tuple[int, int]:
        d = delivered[uuid]
        return meetings.index(d.recording_id), order.index(d.recording_status)

    arrival = [r.headers["rtk-uuid"] for r in receiver.received]
    delayed = [u for u in arrival if delivered[u].delayed]
    prompt = [u for u in arrival if not delivered[u].delayed]
    assert delayed
    assert prompt
    assert arrival == prompt + delayed  # every delayed delivery was overtaken
    # ...including by events emitted after it: a real reordering.
    assert min(emitted_rank(u) for u in delayed) < max(emitted_rank(u) for u in prompt)


async def test_key_rotation(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(webhook_urls=[receiver.url])
    old_pem = emu.webhook_public_key_pem
    new_pem = emu.rotate_webhook_key()
    assert new_pem != old_pem
    assert (await call(session, "GET", emu.webhook_keys_url)).body["data"]["publicKey"] == new_pem
    await start(session, emu, "m")
    emu.advance(2)
    await emu.wait_for_webhooks()
    (got,) = receiver.received
    verify(new_pem, got.body, got.headers["rtk-signature"])
    with pytest.raises(InvalidSignature):
        verify(old_pem, got.body, got.headers["rtk-signature"])


async def test_deliveries_do_not_block_the_api_and_close_cleanly(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.delay = 5.0  # a hung endpoint
    emu = await make_emu(webhook_urls=[receiver.url])
    rec = await start(session, emu, "m")
    emu.advance(2)
    await eventually(lambda: bool(receiver.received))  # the delivery is in the hung endpoint
    assert (await get_recording(session, emu, rec["id"]))["status"] == "RECORDING"
    assert emu._sender.pending == 1
    await emu.close()  # cancels the in-flight delivery; no leaked session or task
    assert emu._sender.pending == 0


async def test_webhooks_fire_without_polling(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(webhook_urls=[receiver.url], speed=500.0)
    await start(session, emu, "m")
    for _ in range(200):
        if receiver.received:
            break
        await asyncio.sleep(0.01)
    assert json.loads(receiver.received[0].body)["recording"]["status"] == "RECORDING"


async def test_track_recording_webhook_lists_layer_urls(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    emu = await make_emu(webhook_urls=[receiver.url])
    body = {
        "meeting_id": "m",
        "layers": {"default": {"outputs": [{"type": "REALTIMEKIT_BUCKET"}]}},
    }
    reply = await call(session, "POST", f"{emu.recordings_url}/track", emu=emu, json=body)
    rid = reply.body["data"]["recording"]["id"]
    emu.advance(30)
    await control(session, emu, rid, "stop")
    emu.advance(3)
    await emu.wait_for_webhooks()
    uploaded = [
        json.loads(r.body)
        for r in receiver.received
        if json.loads(r.body)["recording"]["status"] == "UPLOADED"
    ]
    (payload,) = uploaded
    urls = payload["recording"]["downloadUrl"]
    assert isinstance(urls, list)
    assert urls[0]["layer_name"] == "default"
    api = await get_recording(session, emu, rid)
    assert urls[0]["download_urls"]["default.mp4"]["download_url"] == api["download_url"]
