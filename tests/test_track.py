"""Track recordings in both generations of the API: the body sent and the answers decoded.

Current API (the published schema): ``meeting_id``, optional ``layers`` of
``{file_name_prefix, media_kind}``, optional ``user_ids``; the answer is
``data.recording``. Legacy (the seed): ``layers.*.outputs[]`` and
``max_seconds``; the answer may be a flat recording in ``data`` or nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from realtimekit_async import (
    MediaKind,
    RealtimeKit,
    StartTrackRecordingParams,
    StorageConfig,
    TrackLayer,
    TrackOutput,
    TrackOutputType,
    ValidationError,
)
from realtimekit_async.emulator import Emulator

from ._support import RECORDINGS, emulator_client, ok, recording_json, sent

MEETING = "5d2e6a8c-1f3b-4c7d-9e0a-2b4c6d8e0f1a"
OTHER_MEETING = "6e3f7b9d-2a4c-4d8e-8f1b-3c5d7e9f1a2b"
REC_ID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
BUCKET = TrackOutput(type=TrackOutputType.REALTIMEKIT_BUCKET)


async def test_current_body_is_sent_and_data_recording_decoded(
    api: Any, client: RealtimeKit
) -> None:
    api.post(f"{RECORDINGS}/track", payload=ok({"recording": recording_json()}))
    rec = await client.recordings.start_track(
        MEETING,
        layers={"voices": TrackLayer(file_name_prefix="v", media_kind=MediaKind.AUDIO)},
        user_ids=["u1", "u2"],
    )
    (request,) = sent(api)
    assert request.method == "POST"
    assert request.raw_path.endswith("/recordings/track")
    assert json.loads(request.captured_body) == {
        "meeting_id": MEETING,
        "layers": {"voices": {"file_name_prefix": "v", "media_kind": "audio"}},
        "user_ids": ["u1", "u2"],
    }
    assert rec is not None
    assert rec.id == REC_ID


async def test_current_body_with_only_a_meeting(api: Any, client: RealtimeKit) -> None:
    api.post(f"{RECORDINGS}/track", payload=ok({"recording": recording_json()}))
    rec = await client.recordings.start_track(MEETING)
    assert json.loads(sent(api)[0].captured_body) == {"meeting_id": MEETING}
    assert rec is not None


async def test_legacy_body_is_sent_and_a_flat_recording_decoded(
    api: Any, client: RealtimeKit
) -> None:
    api.post(f"{RECORDINGS}/track", payload=ok(recording_json()))
    storage = StorageConfig(type="aws", bucket="b", secret="s3cr3t")
    layers = {
        "default": TrackLayer(
            outputs=[BUCKET, TrackOutput(type="STORAGE_CONFIG", storage_config=storage)],
            file_name_prefix="p",
        )
    }
    rec = await client.recordings.start_track(MEETING, layers=layers, max_seconds=120)
    assert json.loads(sent(api)[0].captured_body) == {
        "meeting_id": MEETING,
        "layers": {
            "default": {
                "file_name_prefix": "p",
                "outputs": [
                    {"type": "REALTIMEKIT_BUCKET"},
                    {
                        "type": "STORAGE_CONFIG",
                        "storage_config": {"type": "aws", "bucket": "b", "secret": "s3cr3t"},
                    },
                ],
            }
        },
        "max_seconds": 120,
    }
    assert rec is not None
    assert rec.id == REC_ID


@pytest.mark.parametrize(
    "answer",
    [
        {"payload": {"success": True}},
        {"payload": {"success": True, "data": None}},
        {"body": b""},
    ],
    ids=["no-data", "null-data", "no-body"],
)
async def test_an_answer_without_a_recording_is_none(
    api: Any, client: RealtimeKit, answer: dict[str, Any]
) -> None:
    api.post(f"{RECORDINGS}/track", **answer)
    layers = {"l": TrackLayer(outputs=[BUCKET])}
    assert await client.recordings.start_track(MEETING, layers=layers) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {"user_ids": ["u"], "max_seconds": 120, "layers": {"l": TrackLayer(outputs=[BUCKET])}},
            "user_ids",
        ),
        ({"user_ids": ["u"], "layers": {"l": TrackLayer(outputs=[BUCKET])}}, "user_ids"),
        (
            {"layers": {"a": TrackLayer(media_kind="audio"), "b": TrackLayer(outputs=[BUCKET])}},
            "layers.a.media_kind",
        ),
        (
            {"layers": {"a": TrackLayer(media_kind="audio")}, "max_seconds": 60},
            "layers.a.media_kind",
        ),
        ({"max_seconds": 60}, "layers"),
        (
            {"layers": {"a": TrackLayer(file_name_prefix="p")}, "max_seconds": 60},
            "layers.a.outputs",
        ),
        ({"layers": {"a": TrackLayer(outputs=[])}}, "layers.a.outputs"),
        ({"user_ids": "u1"}, "user_ids"),
        ({"user_ids": [""]}, "user_ids"),
        ({"user_ids": [f"u{i}" for i in range(101)]}, "user_ids"),
        ({"layers": {}}, "layers"),
    ],
)
async def test_bad_or_mixed_bodies_fail_before_sending(
    api: Any, client: RealtimeKit, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        await client.recordings.start_track(MEETING, **kwargs)
    assert info.value.field == field
    assert sent(api) == []


def test_a_media_kind_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="media_kind: 1 is not one of 'audio'"):
        TrackLayer(media_kind=1)  # type: ignore[arg-type]


def test_mixing_names_both_generations() -> None:
    with pytest.raises(ValidationError, match="current track-recording body, max_seconds"):
        StartTrackRecordingParams(meeting_id=MEETING, user_ids=["u"], max_seconds=60)


def test_generation_follows_the_arguments() -> None:
    assert StartTrackRecordingParams(
        meeting_id=MEETING, max_seconds=60, layers={"l": TrackLayer(outputs=[BUCKET])}
    ).legacy
    assert not StartTrackRecordingParams(meeting_id=MEETING, user_ids=["u"]).legacy
    assert not StartTrackRecordingParams(meeting_id=MEETING).legacy
    # A media kind newer than this SDK can be sent as its string.
    layer = TrackLayer(media_kind="video")
    assert StartTrackRecordingParams(meeting_id=MEETING, layers={"l": layer}).layers == {"l": layer}


@pytest.mark.parametrize("shape", ["current", "legacy", "none"])
async def test_both_generations_against_the_emulator(shape: str) -> None:
    async with (
        Emulator(speed=0, track_response=shape) as emu,  # type: ignore[arg-type]
        emulator_client(emu) as rtk,
    ):
        current = await rtk.recordings.start_track(
            MEETING,
            layers={"voices": TrackLayer(file_name_prefix="voices", media_kind=MediaKind.AUDIO)},
            user_ids=["user-1", "user-2"],
        )
        legacy = await rtk.recordings.start_track(
            OTHER_MEETING,  # one active track recording per meeting
            layers={"default": TrackLayer(outputs=[BUCKET])},
            max_seconds=3600,
        )
        stored = sorted(emu.store.recordings.values(), key=lambda r: r.seq)
        assert [r.user_ids for r in stored] == [("user-1", "user-2"), ()]
        assert [r.max_seconds for r in stored] == [86_400, 3600]
        if shape == "none":
            assert current is None
            assert legacy is None
        else:
            assert current is not None
            assert legacy is not None
            assert [current.id, legacy.id] == [r.id for r in stored]
            assert current.output_file_name.startswith("voices_")
