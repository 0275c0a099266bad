"""The published schema as the reference for both sides (tests/_schema.py).

Every emulator answer in the suite is checked by the autouse middleware in
``conftest.py``; here: that the check catches drift, and that every public SDK
method sends, for every parameter, what the schema's parameters and request
bodies admit (nothing required left out).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from realtimekit_async import (
    AudioChannel,
    AudioCodec,
    AudioConfig,
    InteractiveConfig,
    InteractiveConfigType,
    MediaKind,
    RealtimeKit,
    RealtimeKitBucketConfig,
    RecordingStatus,
    RetryPolicy,
    RtmpOutConfig,
    SftpAuthMethod,
    SortBy,
    SortOrder,
    StorageConfig,
    StorageType,
    TrackLayer,
    TrackOutput,
    TrackOutputType,
    ValidationError,
    VideoCodec,
    VideoConfig,
    Watermark,
    WatermarkPosition,
    WatermarkSize,
)
from realtimekit_async.emulator import Emulator

from . import _support
from ._schema import OPERATIONS, answer_problems, request_problems
from ._support import emulator_client, recording_json

ACCOUNT = "0e3a1c5b7d9f42e68a0b1c2d3e4f5a6b"
APP = "2a95132c15732412d22c1476fa83f27a"  # the schema's app id: 32 hex digits
MEETING = "5d2e6a8c-1f3b-4c7d-9e0a-2b4c6d8e0f1a"
REC_ID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
T1 = datetime(2025, 1, 1, tzinfo=UTC)
T2 = datetime(2025, 1, 2, tzinfo=UTC)


# -- the answer check catches drift -------------------------------------------------------


def _detail(**overrides: Any) -> bytes:
    return json.dumps({"success": True, "data": recording_json(**overrides)}).encode()


@pytest.mark.parametrize(
    ("route", "status", "body", "problem"),
    [
        ("start_recording", 201, _detail(), "the schema documents 200"),
        ("get_recording", 200, _detail(stop_reason=None), "stop_reason: null is not of type"),
        (
            "get_recording",
            200,
            _detail(start_reason={"caller": {"user_Id": "app456"}, "reason": "API_CALL"}),
            '"app456" is not a "uuid"',
        ),
        ("get_recording", 200, _detail(status="DONE"), '"DONE" is not one of'),
        ("get_recording", 200, _detail(id=None), 'id: null is not of type "string"'),
        (
            "get_recording",
            200,
            _detail(file_name_prefix=None, output_file_name=None),
            "output_file_name",
        ),
        ("start_track_recording", 200, _detail(), '"recording" is a required property'),
        (
            "list_recordings",
            200,
            json.dumps({"success": True, "data": [], "paging": {"total_count": 0}}).encode(),
            '"start_offset" is a required property',
        ),
        (
            "get_recording",
            404,
            b'{"success": false, "error": {"message": "x"}}',
            '"code" is a required property',
        ),
    ],
)
def test_the_answer_check_catches_drift(route: str, status: int, body: bytes, problem: str) -> None:
    problems = answer_problems(route, status, body)
    assert any(problem in p for p in problems), problems


def test_conforming_answers_pass() -> None:
    assert answer_problems("get_recording", 200, _detail()) == []
    track = {"success": True, "data": {"recording": recording_json()}}
    assert answer_problems("start_track_recording", 200, json.dumps(track).encode()) == []
    cf_edge = b'{"success": false, "errors": [{"code": 10000, "message": "x"}]}'
    assert answer_problems("get_recording", 401, cf_edge) == []


async def test_the_suite_wide_check_sees_every_emulator_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Make the emulator drift (the old null stop_reason) and watch the middleware see it.
    from realtimekit_async.emulator import _app

    real = getattr(_app, "recording_json")  # noqa: B009  # not re-exported

    def drifting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**real(*args, **kwargs), "stop_reason": None}

    monkeypatch.setattr(_app, "recording_json", drifting)
    async with Emulator(speed=0) as emu, emulator_client(emu) as rtk:
        await rtk.recordings.start(MEETING)
    drift = list(_support.SCHEMA_DRIFT)
    _support.SCHEMA_DRIFT.clear()
    assert drift
    assert all("(start_recording)" in d and "stop_reason: null" in d for d in drift), drift


_DRIFTING_SUBPROCESS = """
import asyncio

from realtimekit_async.emulator import _app
from tests._support_drift import start_one

real = _app.recording_json
_app.recording_json = lambda *a, **k: {**real(*a, **k), "stop_reason": None}
asyncio.run(start_one())
"""


def test_emulators_in_subprocesses_are_checked_too(schema_drift_file: Path) -> None:
    # The same drift, in an emulator a child process starts: the child writes it to the
    # drift file (tests/_schema_site/sitecustomize.py), which would fail this test.
    done = subprocess.run(
        [sys.executable, "-c", _DRIFTING_SUBPROCESS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    drift = schema_drift_file.read_text(encoding="utf-8").splitlines()
    schema_drift_file.write_text("", encoding="utf-8")
    assert drift
    assert all("(start_recording)" in d and "stop_reason: null" in d for d in drift), drift


# -- what the SDK sends ---------------------------------------------------------------------


class Capture:
    """A server that answers every Recordings route with a valid answer and keeps the request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], list[tuple[str, str]], Any]] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.Response:
        route = request.match_info.route.name or ""
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.requests.append((route, dict(request.match_info), list(request.query.items()), body))
        recording = recording_json()
        if route == "list_recordings":
            paging = {"start_offset": 1, "end_offset": 1, "total_count": 1}
            return web.json_response({"success": True, "data": [recording], "paging": paging})
        if route == "start_track_recording":
            return web.json_response({"success": True, "data": {"recording": recording}})
        if route == "control_recording":
            status = {"stop": "UPLOADING", "pause": "PAUSED", "resume": "RECORDING"}
            recording["status"] = status.get(str((body or {}).get("action")), "RECORDING")
        return web.json_response({"success": True, "data": recording})

    async def start(self) -> None:
        app = web.Application()
        base = "/client/v4/accounts/{account_id}/realtime/kit/{app_id}/recordings"
        app.router.add_get(base, self._answer, name="list_recordings")
        app.router.add_post(base, self._answer, name="start_recording")
        app.router.add_post(base + "/track", self._answer, name="start_track_recording")
        app.router.add_get(
            base + "/active-recording/{meeting_id}", self._answer, name="get_active_recording"
        )
        app.router.add_get(base + "/{recording_id}", self._answer, name="get_recording")
        app.router.add_put(base + "/{recording_id}", self._answer, name="control_recording")
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/client/v4"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def capture() -> AsyncIterator[tuple[Capture, RealtimeKit]]:
    server = Capture()
    await server.start()
    client = RealtimeKit(
        api_token="t",
        account_id=ACCOUNT,
        app_id=APP,
        base_url=server.base_url,
        rate_limit=None,
        max_retries=RetryPolicy(max_retries=0),
    )
    try:
        yield server, client
    finally:
        await client.close()
        await server.close()


FULL_STORAGE = StorageConfig(
    type=StorageType.SFTP,
    access_key="ak",
    auth_method=SftpAuthMethod.PASSWORD,
    bucket="b",
    host="sftp.example",
    password="pw",
    path="recordings/",
    port=22,
    private_key="pk",
    region="eu",
    secret="s",
    username="u",
)

Call = Callable[[RealtimeKit], Awaitable[Any]]

CALLS: list[tuple[str, Call]] = [
    ("list, defaults", lambda c: c.recordings.list()),
    (
        "list, every parameter",
        lambda c: c.recordings.list(
            meeting_id=MEETING,
            status=[RecordingStatus.UPLOADED, RecordingStatus.ERRORED],
            search="standup",
            start_time=T1,
            end_time=T2,
            expired=False,
            sort_by=SortBy.INVOKED_TIME,
            sort_order=SortOrder.ASC,
            page_no=3,
            per_page=250,
        ),
    ),
    ("start, meeting only", lambda c: c.recordings.start(MEETING)),
    (
        "start, every parameter",
        lambda c: c.recordings.start(
            MEETING,
            allow_multiple_recordings=True,
            audio_config=AudioConfig(
                channel=AudioChannel.MONO, codec=AudioCodec.MP3, export_file=True
            ),
            file_name_prefix="standup",
            interactive_config=InteractiveConfig(type=InteractiveConfigType.ID3),
            max_seconds=3600,
            realtimekit_bucket_config=RealtimeKitBucketConfig(enabled=False),
            rtmp_out_config=RtmpOutConfig(rtmp_url="rtmp://live.example/app/key"),
            storage_config=FULL_STORAGE,
            url="https://app.example/meeting",
            video_config=VideoConfig(
                codec=VideoCodec.VP8,
                export_file=False,
                height=720,
                width=1280,
                watermark=Watermark(
                    position=WatermarkPosition.RIGHT_BOTTOM,
                    size=WatermarkSize(height=40, width=120),
                    url="https://app.example/logo.png",
                ),
            ),
        ),
    ),
    ("start_track, meeting only", lambda c: c.recordings.start_track(MEETING)),
    (
        "start_track, current body",
        lambda c: c.recordings.start_track(
            MEETING,
            layers={"voices": TrackLayer(file_name_prefix="v", media_kind=MediaKind.AUDIO)},
            user_ids=["user-1", "user-2"],
        ),
    ),
    (
        "start_track, legacy body",
        lambda c: c.recordings.start_track(
            MEETING,
            layers={
                "default": TrackLayer(
                    file_name_prefix="p",
                    outputs=[
                        TrackOutput(type=TrackOutputType.REALTIMEKIT_BUCKET),
                        TrackOutput(
                            type=TrackOutputType.STORAGE_CONFIG, storage_config=FULL_STORAGE
                        ),
                    ],
                )
            },
            max_seconds=120,
        ),
    ),
    ("get", lambda c: c.recordings.get(REC_ID)),
    ("get_active", lambda c: c.recordings.get_active(MEETING)),
    ("stop", lambda c: c.recordings.stop(REC_ID)),
    ("pause", lambda c: c.recordings.pause(REC_ID)),
    ("resume", lambda c: c.recordings.resume(REC_ID)),
    ("pause_resume_stop", lambda c: c.recordings.pause_resume_stop(REC_ID, "stop")),
    ("wait_for", lambda c: c.recordings.wait_for(REC_ID, RecordingStatus.INVOKED)),
]


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[n for n, _ in CALLS])
async def test_what_the_sdk_sends_is_what_the_schema_admits(
    capture: tuple[Capture, RealtimeKit], call: Call
) -> None:
    server, client = capture
    result = call(client)
    if hasattr(result, "__aiter__"):
        assert [r.id async for r in result] == [REC_ID]
    else:
        await result
    assert server.requests
    for route, path_params, query, body in server.requests:
        assert route in OPERATIONS
        assert request_problems(route, path_params, query, body) == [], (route, query, body)


def test_the_request_check_catches_what_the_schema_rejects() -> None:
    problems = request_problems(
        "start_recording",
        {"account_id": ACCOUNT, "app_id": APP},
        [],
        {"meeting_id": MEETING, "realtimekit_bucket_config": {}, "video_config": {"codec": "VP9"}},
    )
    assert any('"enabled" is a required property' in p for p in problems), problems
    assert any('"VP9" is not one of' in p for p in problems), problems
    problems = request_problems(
        "list_recordings",
        {"account_id": ACCOUNT, "app_id": APP},
        [("per_page", "-1"), ("status[]", "UPLOADED")],
        None,
    )
    assert any("per_page" in p and "minimum" in p for p in problems), problems
    assert any("status[]: not a documented parameter" in p for p in problems), problems


def test_a_bucket_config_always_carries_enabled() -> None:
    # The schema requires it; leaving it out used to send {"realtimekit_bucket_config": {}}.
    with pytest.raises(TypeError, match="enabled"):
        RealtimeKitBucketConfig()  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="enabled: must be True or False, got None"):
        RealtimeKitBucketConfig(enabled=None)  # type: ignore[arg-type]
