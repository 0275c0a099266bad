"""Endpoint behaviour over real HTTP: shapes, status codes, auth, lifecycle."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from realtimekit_async.emulator import Emulator
from realtimekit_async.emulator._state import compute_file_size
from realtimekit_async.emulator.pytest_plugin import EmulatorFactory

from ._support import FIXED_START_ISO, call, control, get_recording, start

BASE_KEYS = {
    "id",
    "audio_download_url",
    "download_url",
    "download_url_expiry",
    "file_size",
    "invoked_time",
    "output_file_name",
    "session_id",
    "started_time",
    "status",
    "stopped_time",
    "recording_duration",
}
DETAIL_KEYS = BASE_KEYS | {"start_reason", "stop_reason", "storage_config"}


async def test_missing_or_wrong_token_is_401_in_cloudflare_shape(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    expected = {
        "success": False,
        "errors": [{"code": 10000, "message": "Authentication error"}],
        "messages": [],
        "result": None,
    }
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": emu.token}):
        reply = await call(session, "GET", emu.recordings_url, headers=headers)
        assert reply.status == 401
        assert reply.body == expected
    assert emu.stats.statuses[401] == 3


async def test_another_account_or_app_answers_as_cloudflare_would(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    rec = await start(session, emu, "m-1")
    base = f"{emu.base_url}/accounts"
    other_account = f"{base}/other/realtime/kit/{emu.app_id}/recordings/{rec['id']}"
    reply = await call(session, "GET", other_account, emu=emu)
    assert (reply.status, reply.body) == (
        403,
        {
            "success": False,
            "errors": [{"code": 10000, "message": "Authentication error"}],
            "messages": [],
            "result": None,
        },
    )
    other_app = f"{base}/{emu.account_id}/realtime/kit/other-app/recordings"
    reply = await call(session, "POST", other_app, json={"meeting_id": "m-2"}, emu=emu)
    assert reply.status == 404
    assert reply.body == {
        "success": False,
        "error": {"code": 404, "message": "app other-app not found in this account"},
    }
    assert emu.stats.starts_by_meeting == {"m-1": 1}
    # A wrong token is still refused first (401), whatever the path names.
    reply = await call(session, "GET", other_account, headers={"Authorization": "Bearer x"})
    assert reply.status == 401


async def test_cf_ray_is_unique_per_response(emu: Emulator, session: aiohttp.ClientSession) -> None:
    rays = set()
    for _ in range(5):
        reply = await call(session, "GET", emu.recordings_url, emu=emu)
        rays.add(reply.headers["cf-ray"])
    rays.add((await call(session, "GET", emu.recordings_url)).headers["cf-ray"])
    assert len(rays) == 6
    assert all(r.endswith("-EMU") and len(r) == 20 for r in rays)


async def test_unknown_routes_are_404_and_wrong_method_405(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    reply = await call(session, "GET", emu.base_url + "/accounts/a/nothing", emu=emu)
    assert reply.status == 404
    assert reply.body["success"] is False
    assert reply.body["error"]["code"] == 404
    assert "not found" in reply.body["error"]["message"]
    reply = await call(session, "GET", emu.api_origin + "/elsewhere")
    assert reply.status == 404
    assert reply.body["error"]["code"] == 404
    reply = await call(session, "DELETE", emu.recordings_url, emu=emu)
    assert reply.status == 405
    assert reply.body["error"]["code"] == 405
    assert "GET" in reply.headers["Allow"]


async def test_start_returns_200_with_nulls_present(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    reply = await call(
        session,
        "POST",
        emu.recordings_url,
        emu=emu,
        json={"meeting_id": "m-1", "file_name_prefix": "standup"},
    )
    assert reply.status == 200  # the schema's only success status for start
    assert reply.body["success"] is True
    data = reply.body["data"]
    # stop_reason is an object when present, never null: absent until a stop.
    assert set(data) == DETAIL_KEYS - {"stop_reason"}
    assert data["status"] == "INVOKED"
    assert data["invoked_time"] == FIXED_START_ISO
    for key in (
        "audio_download_url",
        "download_url",
        "download_url_expiry",
        "file_size",
        "session_id",
        "started_time",
        "stopped_time",
        "storage_config",
    ):
        assert data[key] is None, key
    assert data["recording_duration"] == 0
    assert data["output_file_name"].startswith("standup_m-1_")
    assert data["start_reason"] == {
        "caller": {"name": "emulator-app", "type": "ORGANIZATION", "user_Id": emu.app_id},
        "reason": "API_CALL",
    }
    assert emu.stats.starts_by_meeting["m-1"] == 1
    assert emu.stats.requests["start_recording"] == 1


async def test_start_validation_errors_use_realtimekit_shape(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    cases = [
        ({"max_seconds": 30, "meeting_id": "m"}, "max_seconds must be between 60 and 86400"),
        ({"max_seconds": 90000, "meeting_id": "m"}, "max_seconds must be between 60 and 86400"),
        ({"file_name_prefix": "x"}, "meeting_id is required"),
        ({"meeting_id": "m", "storage_config": {"type": "dropbox"}}, "storage_config.type"),
    ]
    for body, message in cases:
        reply = await call(session, "POST", emu.recordings_url, emu=emu, json=body)
        assert reply.status == 400
        assert reply.body["success"] is False
        assert reply.body["error"]["code"] == 400
        assert message in reply.body["error"]["message"]
    reply = await call(session, "POST", emu.recordings_url, emu=emu, data=b"{not json")
    assert reply.status == 400
    assert reply.body["error"]["message"] == "request body must be valid JSON"
    assert emu.store.recordings == {}
    assert sum(emu.stats.starts_by_meeting.values()) == 0


async def test_storage_config_secrets_are_not_echoed(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    config = {
        "type": "aws",
        "bucket": "b",
        "region": "us-east-1",
        "access_key": "AK",
        "secret": "S",
    }
    data = await start(session, emu, "m", storage_config=config)
    assert data["storage_config"] == {"type": "aws", "bucket": "b", "region": "us-east-1"}
    page = await call(session, "GET", emu.recordings_url, emu=emu)
    assert page.body["data"][0]["storage_config"] == data["storage_config"]


async def test_get_recording_and_404(emu: Emulator, session: aiohttp.ClientSession) -> None:
    rec = await start(session, emu, "m")
    assert await get_recording(session, emu, rec["id"]) == rec
    reply = await call(session, "GET", f"{emu.recordings_url}/does-not-exist", emu=emu)
    assert reply.status == 404
    assert reply.body == {
        "success": False,
        "error": {"code": 404, "message": "recording does-not-exist not found"},
    }


async def test_active_recording_endpoint(emu: Emulator, session: aiohttp.ClientSession) -> None:
    url = f"{emu.recordings_url}/active-recording/m"
    reply = await call(session, "GET", url, emu=emu)
    assert reply.status == 404
    assert reply.body["error"] == {
        "code": 404,
        "message": "no active recording found for meeting m",
    }
    rec = await start(session, emu, "m")
    reply = await call(session, "GET", url, emu=emu)
    assert reply.status == 200
    assert set(reply.body["data"]) == BASE_KEYS
    assert reply.body["data"]["id"] == rec["id"]
    emu.advance(10)
    assert (await control(session, emu, rec["id"], "stop")).status == 200
    assert (await call(session, "GET", url, emu=emu)).status == 404


async def test_put_errors(emu: Emulator, session: aiohttp.ClientSession) -> None:
    rec = await start(session, emu, "m")
    reply = await control(session, emu, rec["id"], "rewind")
    assert reply.status == 400
    assert "invalid action 'rewind'" in reply.body["error"]["message"]
    reply = await control(session, emu, rec["id"], "pause")  # still INVOKED
    assert reply.status == 400
    assert "cannot pause a recording in status INVOKED" in reply.body["error"]["message"]
    reply = await control(session, emu, "missing", "stop")
    assert reply.status == 404
    reply = await call(session, "PUT", f"{emu.recordings_url}/{rec['id']}", emu=emu, json=[1])
    assert reply.status == 400


async def test_full_lifecycle_with_pause(emu: Emulator, session: aiohttp.ClientSession) -> None:
    rec = await start(session, emu, "m", audio_config={"codec": "AAC", "export_file": True})
    rid = rec["id"]
    emu.advance(2)
    data = await get_recording(session, emu, rid)
    assert data["status"] == "RECORDING"
    assert data["started_time"] == "2025-03-01T12:00:02.000Z"
    assert data["session_id"] is not None
    emu.advance(20)
    reply = await control(session, emu, rid, "pause")
    assert reply.body["data"]["status"] == "PAUSED"
    emu.advance(600)
    reply = await control(session, emu, rid, "resume")
    assert reply.body["data"]["status"] == "RECORDING"
    emu.advance(10)
    reply = await control(session, emu, rid, "stop")
    data = reply.body["data"]
    assert data["status"] == "UPLOADING"
    assert data["stopped_time"] == "2025-03-01T12:10:32.000Z"
    assert data["recording_duration"] == 30  # 20 s + 10 s; the pause is excluded
    assert data["stop_reason"]["reason"] == "API_CALL"
    assert data["file_size"] is None
    emu.advance(3)
    data = await get_recording(session, emu, rid)
    assert data["status"] == "UPLOADED"
    assert data["file_size"] == compute_file_size(rid, 30, 8192)
    assert data["download_url"].startswith(emu.storage_url + f"/files/{rid}/video?X-Expires=")
    assert data["audio_download_url"].startswith(emu.storage_url + f"/files/{rid}/audio?")
    assert data["download_url_expiry"] == "2025-03-08T12:10:35.000Z"
    assert emu.storage_url != emu.api_origin


async def test_short_recording_errors(emu: Emulator, session: aiohttp.ClientSession) -> None:
    rec = await start(session, emu, "m")
    emu.advance(5)  # RECORDING since +2 s: 3 s recorded
    data = (await control(session, emu, rec["id"], "stop")).body["data"]
    assert data["status"] == "ERRORED"
    assert data["recording_duration"] == 3
    emu.advance(60)
    data = await get_recording(session, emu, rec["id"])
    assert data["status"] == "ERRORED"
    assert data["file_size"] is None
    assert data["download_url"] is None


async def test_max_seconds_auto_stop(emu: Emulator, session: aiohttp.ClientSession) -> None:
    rec = await start(session, emu, "m", max_seconds=60)
    emu.advance(62)
    data = await get_recording(session, emu, rec["id"])
    assert data["status"] == "UPLOADING"
    assert data["recording_duration"] == 60
    assert data["stopped_time"] == "2025-03-01T12:01:02.000Z"
    assert data["stop_reason"] == {"reason": "ALL_PEERS_LEFT"}


async def test_second_start_conflicts_unless_multiple_allowed(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    first = await start(session, emu, "m")
    reply = await call(session, "POST", emu.recordings_url, emu=emu, json={"meeting_id": "m"})
    assert reply.status == 409
    assert reply.body["error"]["code"] == 409
    assert first["id"] in reply.body["error"]["message"]
    second = await start(session, emu, "m", allow_multiple_recordings=True)
    active = await call(session, "GET", f"{emu.recordings_url}/active-recording/m", emu=emu)
    assert active.body["data"]["id"] == second["id"]
    assert emu.stats.starts_by_meeting["m"] == 2
    # UPLOADING no longer counts as active: a new start is accepted.
    emu.advance(10)
    await control(session, emu, first["id"], "stop")
    await control(session, emu, second["id"], "stop")
    await start(session, emu, "m")


async def test_bucket_disabled_gives_no_urls(emu: Emulator, session: aiohttp.ClientSession) -> None:
    rec = await start(session, emu, "m", realtimekit_bucket_config={"enabled": False})
    emu.advance(30)
    await control(session, emu, rec["id"], "stop")
    emu.advance(3)
    data = await get_recording(session, emu, rec["id"])
    assert data["status"] == "UPLOADED"
    assert data["file_size"] == compute_file_size(rec["id"], 28, 8192)
    assert data["download_url"] is None
    assert data["download_url_expiry"] is None


async def test_track_recording_legacy_body(emu: Emulator, session: aiohttp.ClientSession) -> None:
    body = {
        "meeting_id": "m",
        "max_seconds": 120,
        "layers": {
            "default": {"file_name_prefix": "trk", "outputs": [{"type": "REALTIMEKIT_BUCKET"}]}
        },
    }
    reply = await call(session, "POST", f"{emu.recordings_url}/track", emu=emu, json=body)
    assert reply.status == 200
    assert reply.body["success"] is True
    assert set(reply.body["data"]) == {"recording"}
    assert set(reply.body["data"]["recording"]) == BASE_KEYS
    assert reply.body["data"]["recording"]["status"] == "INVOKED"
    assert emu.stats.starts_by_meeting["m"] == 1
    bad = {"meeting_id": "m", "layers": {"x": {"outputs": []}}}
    reply = await call(session, "POST", f"{emu.recordings_url}/track", emu=emu, json=bad)
    assert reply.status == 400
    assert "layers.x.outputs" in reply.body["error"]["message"]


async def test_track_recording_current_body(emu: Emulator, session: aiohttp.ClientSession) -> None:
    body = {
        "meeting_id": "m",
        "layers": {"voices": {"file_name_prefix": "v", "media_kind": "audio"}},
        "user_ids": ["u1", "u2"],
    }
    reply = await call(session, "POST", f"{emu.recordings_url}/track", emu=emu, json=body)
    assert reply.status == 200
    rec = reply.body["data"]["recording"]
    assert rec["output_file_name"].startswith("v_m_")
    stored = emu.store.get(rec["id"])
    assert stored.kind == "track"
    assert stored.user_ids == ("u1", "u2")
    mixed = {**body, "max_seconds": 60}
    reply = await call(session, "POST", f"{emu.recordings_url}/track", emu=emu, json=mixed)
    assert reply.status == 400
    assert "not both" in reply.body["error"]["message"]


@pytest.mark.parametrize(("shape", "expected"), [("legacy", BASE_KEYS), ("none", None)])
async def test_track_response_shape_is_configurable(
    make_emu: EmulatorFactory,
    session: aiohttp.ClientSession,
    shape: str,
    expected: set[str] | None,
) -> None:
    emu = await make_emu(track_response=shape)
    reply = await call(
        session, "POST", f"{emu.recordings_url}/track", emu=emu, json={"meeting_id": "m"}
    )
    assert reply.status == 200
    if expected is None:
        assert reply.body == {"success": True}
    else:
        assert set(reply.body["data"]) == expected


async def test_unknown_meeting_rejected_when_auto_create_disabled(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(auto_create_meetings=False)
    reply = await call(session, "POST", emu.recordings_url, emu=emu, json={"meeting_id": "x"})
    assert reply.status == 404
    mid = emu.add_meeting(title="Known")
    await start(session, emu, mid)
    inactive = emu.add_meeting(status="INACTIVE")
    reply = await call(session, "POST", emu.recordings_url, emu=emu, json={"meeting_id": inactive})
    assert reply.status == 400
    assert "INACTIVE" in reply.body["error"]["message"]


async def test_extra_fields_mode_adds_unknown_keys(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(extra_fields=True, recordings=3, meetings=1)
    page = await call(session, "GET", emu.recordings_url, emu=emu)
    item = page.body["data"][0]
    assert "recording_config" in item["meeting"]
    assert "user_ids" in item
    plain = await make_emu(recordings=3, meetings=1)
    page = await call(session, "GET", plain.recordings_url, emu=plain)
    assert "recording_config" not in page.body["data"][0]["meeting"]


async def test_webhook_public_key_endpoint(emu: Emulator, session: aiohttp.ClientSession) -> None:
    reply = await call(session, "GET", emu.webhook_keys_url)  # no auth needed
    assert reply.status == 200
    pem = reply.body["data"]["publicKey"]
    assert reply.body["success"] is True
    assert pem == emu.webhook_public_key_pem
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048


async def test_public_key_with_literal_newlines(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(public_key_literal_newlines=True)
    pem = (await call(session, "GET", emu.webhook_keys_url)).body["data"]["publicKey"]
    assert "\n" not in pem
    assert pem.replace("\\n", "\n") == emu.webhook_public_key_pem


async def test_start_status_is_configurable(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(start_status=200)
    reply = await call(session, "POST", emu.recordings_url, emu=emu, json={"meeting_id": "m"})
    assert reply.status == 200


async def test_ticker_advances_without_requests(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(speed=200.0)  # start_delay 2 s emulated = 10 ms real
    rec = await start(session, emu, "m")
    for _ in range(100):
        if emu.store.recordings[rec["id"]].status == "RECORDING":
            break
        await asyncio.sleep(0.01)
    assert emu.store.recordings[rec["id"]].status == "RECORDING"
