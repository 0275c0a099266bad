"""A client nobody here wrote agrees: the official ``cloudflare`` SDK against the emulator.

It drives all six Recordings endpoints with strict response validation
(``_strict_response_validation=True``: pydantic refuses a missing required
field or a wrong type), and every answer must decode into its generated
models with no field the models do not know (no extras, at any depth) and
every field the schema requires of a recording present.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from realtimekit_async.emulator import Emulator

from ._schema import spec

cloudflare = pytest.importorskip("cloudflare")

MEETING = "5d2e6a8c-1f3b-4c7d-9e0a-2b4c6d8e0f1a"
RECORDING_REQUIRED = frozenset(spec()["components"]["schemas"]["realtimekit_Recording"]["required"])


def extras(model: Any, where: str = "") -> list[str]:
    """Every key the answer had that the generated model does not declare, at any depth."""
    found = [f"{where}.{key}" for key in model.model_extra or {}]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, pydantic.BaseModel):
                found += extras(item, f"{where}.{name}" + (f"[{i}]" if value is items else ""))
    return found


def assert_complete_recording(recording: Any) -> None:
    missing = RECORDING_REQUIRED - recording.model_fields_set
    assert not missing, missing


async def test_the_official_sdk_drives_every_endpoint_strictly() -> None:
    async with (
        Emulator(recordings=12, speed=0) as emu,
        cloudflare.AsyncCloudflare(
            api_token=emu.token,
            base_url=emu.base_url,
            max_retries=0,
            _strict_response_validation=True,
        ) as cf,
    ):
        recordings = cf.realtime_kit.recordings
        ids = {"account_id": emu.account_id, "app_id": emu.app_id}

        started = await recordings.start_recordings(
            emu.app_id,
            account_id=emu.account_id,
            meeting_id=MEETING,
            file_name_prefix="standup",
            realtimekit_bucket_config={"enabled": True},
            video_config={"codec": "VP8", "height": 720, "width": 1280},
        )
        assert started.data is not None
        assert_complete_recording(started.data)
        assert started.data.status == "INVOKED"
        rid = started.data.id

        active = await recordings.get_active_recordings(MEETING, **ids)
        assert active.data.id == rid
        assert_complete_recording(active.data)

        emu.advance(30)
        paused = await recordings.pause_resume_stop_recording(rid, action="pause", **ids)
        resumed = await recordings.pause_resume_stop_recording(rid, action="resume", **ids)
        stopped = await recordings.pause_resume_stop_recording(rid, action="stop", **ids)
        assert [paused.data.status, resumed.data.status, stopped.data.status] == [
            "PAUSED",
            "RECORDING",
            "UPLOADING",
        ]
        emu.advance(10)
        one = await recordings.get_one_recording(rid, **ids)
        assert one.data.status == "UPLOADED"
        assert one.data.stop_reason is not None
        assert one.data.stop_reason.reason == "API_CALL"
        assert_complete_recording(one.data)

        track = await recordings.start_track_recording(
            emu.app_id,
            account_id=emu.account_id,
            meeting_id=MEETING,
            layers={"voices": {"file_name_prefix": "v", "media_kind": "audio"}},
            user_ids=["user-1"],
        )
        assert track.data is not None
        assert_complete_recording(track.data.recording)

        listed = await recordings.get_recordings(
            emu.app_id,
            account_id=emu.account_id,
            per_page=5,
            page_no=1,
            status=["UPLOADED", "INVOKED", "RECORDING", "UPLOADING", "ERRORED", "PAUSED"],
            sort_order="DESC",
        )
        assert len(listed.data) == 5
        assert listed.paging.total_count == 14
        for item in listed.data:
            assert_complete_recording(item)

        answers = [started, active, paused, resumed, stopped, one, track, listed]
        assert [extras(answer) for answer in answers] == [[]] * len(answers)
