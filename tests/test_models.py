"""Models and the converter: lenient decoding, strict and named input validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest

from realtimekit_async import (
    APIResponseValidationError,
    AudioCodec,
    AudioConfig,
    Caller,
    ListRecordingsParams,
    Meeting,
    MeetingStatus,
    Paging,
    RealtimeKit,
    RealtimeKitBucketConfig,
    Recording,
    RecordingActionParams,
    RecordingConfig,
    RecordingPage,
    RecordingStatus,
    RtmpOutConfig,
    StartRecordingParams,
    StartTrackRecordingParams,
    StorageConfig,
    TrackLayer,
    TrackOutput,
    ValidationError,
    VideoCodec,
    VideoConfig,
    Watermark,
    WatermarkPosition,
    WatermarkSize,
)
from realtimekit_async._converter import converter, format_datetime, parse_datetime

from ._support import RECORDINGS, ok, recording_json


def test_recording_decodes_nulls_as_none() -> None:
    rec = converter.structure(recording_json(), Recording)
    assert rec.id == "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
    assert rec.status is RecordingStatus.INVOKED
    assert rec.download_url is None
    assert rec.file_size is None
    assert rec.started_time is None
    assert rec.invoked_time == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_unknown_fields_are_ignored() -> None:
    doc = recording_json(brand_new_field={"x": 1})
    doc["meeting"] = {"id": "m1", "recording_config": {"anything": True}}
    rec = converter.structure(doc, Recording)
    assert rec.meeting == Meeting(id="m1", recording_config=RecordingConfig())


def test_newer_meeting_fields_are_modelled() -> None:
    doc = recording_json()
    doc["meeting"] = {
        "id": "m1",
        "transcribe_on_end": True,
        "recording_config": {
            "max_seconds": 3600.0,
            "file_name_prefix": "p",
            "video_config": {"codec": "VP9", "height": 720},
            "audio_config": {"codec": "AAC"},
            "realtimekit_bucket_config": {"enabled": False},
            "live_streaming_config": {"rtmp_url": "rtmp://x/y"},
            "storage_config": {"type": "r2", "bucket": "b"},
        },
    }
    meeting = converter.structure(doc, Recording).meeting
    assert meeting is not None
    assert meeting.transcribe_on_end is True
    config = meeting.recording_config
    assert config == RecordingConfig(
        audio_config=AudioConfig(codec=AudioCodec.AAC),
        file_name_prefix="p",
        live_streaming_config=RtmpOutConfig(rtmp_url="rtmp://x/y"),
        max_seconds=3600,
        realtimekit_bucket_config=RealtimeKitBucketConfig(enabled=False),
        storage_config=StorageConfig(type="r2", bucket="b"),
        video_config=VideoConfig(codec="VP9", height=720),
    )
    assert config is not None
    assert config.video_config is not None
    # A codec newer than this SDK decodes as an extra member keeping its string.
    assert isinstance(config.video_config.codec, VideoCodec)
    assert config.video_config.codec == "VP9"


@pytest.mark.parametrize("field", ["id", "status", "invoked_time", "output_file_name"])
@pytest.mark.parametrize("value", [None, "missing", []])
@pytest.mark.parametrize("plain", [False, True])
def test_an_always_filled_field_that_is_null_or_missing_is_a_decode_error(
    field: str, value: object, plain: bool
) -> None:
    # The id used to decode as the string 'None' (two such recordings then collapsed).
    doc = recording_json()
    if value == "missing":
        del doc[field]
    else:
        doc[field] = value
    # plain: a Mapping that is not a dict takes cattrs' own generated hook, not _fastdecode's.
    source: Any = MappingProxyType(doc) if plain else doc
    with pytest.raises((KeyError, TypeError, ValueError)):
        converter.structure(source, Recording)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"id": None}, "None is not a string"),
        ({"file_size": 1234.5}, "1234.5 is not a whole number"),
    ],
)
async def test_lossy_answers_are_api_response_validation_errors(
    api: Any, client: RealtimeKit, overrides: dict[str, Any], message: str
) -> None:
    api.get(f"{RECORDINGS}/r1", payload=ok(recording_json(**overrides)))
    with pytest.raises(APIResponseValidationError, match=message):
        await client.recordings.get("r1")


@pytest.mark.parametrize(
    ("field", "value"),
    [("file_size", 1234.5), ("recording_duration", 0.25), ("file_size", float("inf"))],
)
def test_a_fractional_number_is_never_truncated(field: str, value: float) -> None:
    with pytest.raises(ValueError, match="not a whole number"):
        converter.structure(recording_json(**{field: value}), Recording)


def test_integral_floats_decode_as_ints() -> None:
    rec = converter.structure(recording_json(file_size=1234.0, recording_duration=5.0), Recording)
    assert rec.file_size == 1234
    assert type(rec.file_size) is int
    page = converter.structure(
        {"data": [], "paging": {"start_offset": 1.0, "end_offset": 0.0, "total_count": 0.0}},
        RecordingPage,
    )
    assert page.paging == Paging(start_offset=1, end_offset=0, total_count=0)
    with pytest.raises(ValueError, match="not a whole number"):
        converter.structure({"data": [], "paging": {"total_count": 10.5}}, RecordingPage)
    with pytest.raises(ValueError, match="not a whole number"):
        converter.structure({"type": "sftp", "port": 22.5}, StorageConfig)


def test_unknown_enum_value_keeps_raw_string() -> None:
    rec = converter.structure(recording_json(status="ARCHIVED"), Recording)
    assert rec.status == "ARCHIVED"
    assert rec.status.value == "ARCHIVED"
    assert isinstance(rec.status, RecordingStatus)
    assert rec.status not in set(RecordingStatus)
    # It round-trips as the same raw string.
    assert converter.unstructure(rec)["status"] == "ARCHIVED"


def test_newer_enum_values_can_be_sent() -> None:
    # A value the API adds after this release goes out as the string given.
    unknown = converter.structure(recording_json(status="ARCHIVED"), Recording).status
    assert ListRecordingsParams(status=[unknown, "NEWER"]).status == ("ARCHIVED", "NEWER")
    body = StartRecordingParams(meeting_id="m", video_config=VideoConfig(codec="VP9"))
    assert converter.unstructure(body) == {"meeting_id": "m", "video_config": {"codec": "VP9"}}
    # ... while a value of the wrong type is refused before anything is sent.
    with pytest.raises(ValidationError, match="codec: 9 is not one of 'H264', 'VP8'"):
        VideoConfig(codec=9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-01-02T03:04:05Z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02T03:04:05.1Z", datetime(2025, 1, 2, 3, 4, 5, 100000, tzinfo=UTC)),
        ("2025-01-02T03:04:05.123456Z", datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2025-01-02T03:04:05", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (
            "2025-01-02T08:34:05+05:30",
            datetime(2025, 1, 2, 8, 34, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
    ],
)
def test_timestamps_become_aware(raw: str, expected: datetime) -> None:
    parsed = parse_datetime(raw)
    assert parsed == expected
    assert parsed.tzinfo is not None


def test_format_datetime_is_utc_millis_z() -> None:
    when = datetime(2025, 1, 2, 8, 34, 5, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert format_datetime(when) == "2025-01-02T03:04:05.123Z"


@pytest.mark.parametrize("size", [2044680, 2044680.0, "2044680"])
def test_numbers_as_int_float_or_string(size: Any) -> None:
    rec = converter.structure(recording_json(file_size=size, recording_duration=12.0), Recording)
    assert rec.file_size == 2044680
    assert isinstance(rec.file_size, int)
    assert rec.recording_duration == 12


def test_caller_user_id_uses_wire_name() -> None:
    caller = converter.structure({"name": "n", "type": "USER", "user_Id": "u1"}, Caller)
    assert caller.user_id == "u1"
    assert converter.unstructure(caller) == {"name": "n", "type": "USER", "user_Id": "u1"}


def test_page_decodes() -> None:
    page = converter.structure(
        {
            "success": True,
            "data": [recording_json(id="a"), recording_json(id="b")],
            "paging": {"start_offset": 1, "end_offset": 2, "total_count": 30.0},
        },
        RecordingPage,
    )
    assert [r.id for r in page.data] == ["a", "b"]
    assert page.paging.total_count == 30


def test_meeting_booleans_and_numbers() -> None:
    meeting = converter.structure(
        {
            "id": "m",
            "live_stream_on_start": True,
            "persist_chat": False,
            "record_on_start": "false",
            "session_keep_alive_time_in_secs": 60.0,
            "summarize_on_end": True,
        },
        Meeting,
    )
    assert meeting.live_stream_on_start is True
    assert meeting.persist_chat is False
    assert meeting.record_on_start is False
    assert meeting.summarize_on_end is True
    assert meeting.session_keep_alive_time_in_secs == 60


def test_meeting_status_enum() -> None:
    meeting = converter.structure({"id": "m", "status": "INACTIVE"}, Meeting)
    assert meeting.status is MeetingStatus.INACTIVE


def test_request_omits_unset_fields() -> None:
    params = StartRecordingParams(
        meeting_id="m1",
        audio_config=AudioConfig(codec=AudioCodec.AAC),
        video_config=VideoConfig(
            codec=VideoCodec.H264,
            width=1280,
            height=720,
            watermark=Watermark(
                position=WatermarkPosition.LEFT_TOP, size=WatermarkSize(width=10, height=10)
            ),
        ),
    )
    assert converter.unstructure(params) == {
        "meeting_id": "m1",
        "audio_config": {"codec": "AAC"},
        "video_config": {
            "codec": "H264",
            "height": 720,
            "width": 1280,
            "watermark": {"position": "left top", "size": {"height": 10, "width": 10}},
        },
    }


def test_plain_strings_are_accepted_for_documented_values() -> None:
    config = VideoConfig(codec="VP8")
    assert converter.unstructure(config) == {"codec": "VP8"}


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: StartRecordingParams(meeting_id=""), "meeting_id"),
        (lambda: StartRecordingParams(meeting_id="   "), "meeting_id"),
        (lambda: StartRecordingParams(meeting_id="m", max_seconds=59), "max_seconds"),
        (lambda: StartRecordingParams(meeting_id="m", max_seconds=86401), "max_seconds"),
        (lambda: StartRecordingParams(meeting_id="m", max_seconds=True), "max_seconds"),
        (
            lambda: Watermark(position=1),  # type: ignore[arg-type]
            "position",
        ),
        (
            lambda: VideoConfig(codec=264),  # type: ignore[arg-type]
            "codec",
        ),
        (
            lambda: AudioConfig(codec=b"MP3"),  # type: ignore[arg-type]
            "codec",
        ),
        (
            lambda: StorageConfig(type=["aws"]),  # type: ignore[arg-type]
            "type",
        ),
        (lambda: ListRecordingsParams(per_page=0), "per_page"),
        (lambda: ListRecordingsParams(page_no=0), "page_no"),
        (lambda: ListRecordingsParams(status=[None]), "status"),
        (lambda: ListRecordingsParams(start_time=datetime(2025, 1, 1)), "start_time"),
        (
            lambda: ListRecordingsParams(
                start_time=datetime(2025, 2, 1, tzinfo=UTC),
                end_time=datetime(2025, 1, 1, tzinfo=UTC),
            ),
            "start_time",
        ),
        (
            lambda: RecordingActionParams(action=None),  # type: ignore[arg-type]
            "action",
        ),
        (lambda: StartTrackRecordingParams(meeting_id="m", layers={}), "layers"),
        (
            lambda: TrackOutput(type=""),
            "type",
        ),
    ],
)
def test_bad_input_names_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert isinstance(info.value, ValueError)


def test_max_seconds_bounds_are_inclusive() -> None:
    assert StartRecordingParams(meeting_id="m", max_seconds=60).max_seconds == 60
    assert StartRecordingParams(meeting_id="m", max_seconds=86400).max_seconds == 86400


def test_storage_secrets_are_redacted_in_repr() -> None:
    config = StorageConfig(
        type="sftp",
        access_key="AKIA-visible-key",
        secret="s3cr3t-value",
        password="hunter2-pw",
        private_key="-----BEGIN KEY-----xyz",
        username="bob",
    )
    text = repr(config)
    for secret in ("AKIA-visible-key", "s3cr3t-value", "hunter2-pw", "BEGIN KEY"):
        assert secret not in text
    assert "username='bob'" in text
    assert "secret='***'" in text
    # Redaction is display only: the request still carries the secret.
    assert converter.unstructure(config)["secret"] == "s3cr3t-value"


def test_download_urls_are_kept_out_of_repr() -> None:
    rec = converter.structure(
        recording_json(download_url="https://files.example/x?X-Signature=abc"), Recording
    )
    assert "X-Signature" not in repr(rec)


def test_track_layers_round_trip() -> None:
    params = StartTrackRecordingParams(
        meeting_id="m",
        layers={"default": TrackLayer(outputs=[TrackOutput(type="REALTIMEKIT_BUCKET")])},
        max_seconds=60,
    )
    assert converter.unstructure(params) == {
        "meeting_id": "m",
        "layers": {"default": {"outputs": [{"type": "REALTIMEKIT_BUCKET"}]}},
        "max_seconds": 60,
    }


def test_models_are_frozen() -> None:
    rec = converter.structure(recording_json(), Recording)
    with pytest.raises(AttributeError):
        rec.id = "other"  # type: ignore[misc]
