"""Typed request and response objects of the Recordings API.

Every class is a small frozen, slotted attrs class; turning them into JSON and
back is the job of :mod:`realtimekit_async._converter`, not of the classes.
Response classes default every field the API may leave out to ``None`` so that
decoding stays lenient; request classes validate their input on construction
and raise :class:`ValidationError` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import attrs

from ._exceptions import ValidationError
from ._validation import attribute, check_int, check_non_empty

__all__ = [
    "AudioChannel",
    "AudioCodec",
    "AudioConfig",
    "Caller",
    "CallerType",
    "InteractiveConfig",
    "InteractiveConfigType",
    "ListRecordingsParams",
    "MediaKind",
    "Meeting",
    "MeetingStatus",
    "Paging",
    "RealtimeKitBucketConfig",
    "Recording",
    "RecordingAction",
    "RecordingActionParams",
    "RecordingConfig",
    "RecordingPage",
    "RecordingStatus",
    "RtmpOutConfig",
    "SftpAuthMethod",
    "SortBy",
    "SortOrder",
    "StartReason",
    "StartReasonType",
    "StartRecordingParams",
    "StartTrackRecordingParams",
    "StopReason",
    "StopReasonType",
    "StorageConfig",
    "StorageType",
    "TrackLayer",
    "TrackOutput",
    "TrackOutputType",
    "VideoCodec",
    "VideoConfig",
    "Watermark",
    "WatermarkPosition",
    "WatermarkSize",
]

MIN_MAX_SECONDS = 60
MAX_MAX_SECONDS = 86_400


# -- constant sets ---------------------------------------------------------------
# StrEnum members compare equal to their wire strings, so `rec.status == "UPLOADED"`
# works. Values the SDK does not know yet are decoded as extra members that keep
# the raw string (see _converter). Request fields take a member or any non-empty
# string, so a value the API adds after this release (say a VP9 codec) can be sent
# without upgrading; a value of another type is a ValidationError.


class RecordingStatus(StrEnum):
    """Lifecycle state of a recording."""

    INVOKED = "INVOKED"
    RECORDING = "RECORDING"
    UPLOADING = "UPLOADING"
    UPLOADED = "UPLOADED"
    ERRORED = "ERRORED"
    PAUSED = "PAUSED"


class MeetingStatus(StrEnum):
    """Whether a meeting accepts participants (an INACTIVE one cannot be recorded)."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class StorageType(StrEnum):
    """The kind of your own storage a recording is uploaded to."""

    AWS = "aws"
    AZURE = "azure"
    DIGITALOCEAN = "digitalocean"
    GCS = "gcs"
    SFTP = "sftp"


class SftpAuthMethod(StrEnum):
    """How the SFTP storage of a :class:`StorageConfig` authenticates."""

    KEY = "KEY"
    PASSWORD = "PASSWORD"


class CallerType(StrEnum):
    """Whether a :class:`Caller` is the app itself or one of its users."""

    ORGANIZATION = "ORGANIZATION"
    USER = "USER"


class StartReasonType(StrEnum):
    """Why a recording started: an API call, or the meeting's record-on-start setting."""

    API_CALL = "API_CALL"
    RECORD_ON_START = "RECORD_ON_START"


class StopReasonType(StrEnum):
    """Why a recording stopped: an API call, an internal error, or everyone left."""

    API_CALL = "API_CALL"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    ALL_PEERS_LEFT = "ALL_PEERS_LEFT"


class AudioChannel(StrEnum):
    """Mono or stereo audio (:class:`AudioConfig`)."""

    MONO = "mono"
    STEREO = "stereo"


class AudioCodec(StrEnum):
    """The audio codec of a recording (:class:`AudioConfig`)."""

    MP3 = "MP3"
    AAC = "AAC"


class VideoCodec(StrEnum):
    """The video codec of a recording (:class:`VideoConfig`)."""

    H264 = "H264"
    VP8 = "VP8"


class MediaKind(StrEnum):
    """What a (current-generation) track-recording layer records."""

    AUDIO = "audio"


class WatermarkPosition(StrEnum):
    """The corner a :class:`Watermark` is drawn in."""

    LEFT_TOP = "left top"
    RIGHT_TOP = "right top"
    LEFT_BOTTOM = "left bottom"
    RIGHT_BOTTOM = "right bottom"


class InteractiveConfigType(StrEnum):
    """How interactive metadata is embedded (:class:`InteractiveConfig`)."""

    ID3 = "ID3"


class TrackOutputType(StrEnum):
    """Where a track layer goes: RealtimeKit's bucket or your own storage."""

    REALTIMEKIT_BUCKET = "REALTIMEKIT_BUCKET"
    STORAGE_CONFIG = "STORAGE_CONFIG"


class RecordingAction(StrEnum):
    """What ``pause_resume_stop`` does to a recording."""

    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"


class SortOrder(StrEnum):
    """Ascending or descending order of a listing."""

    ASC = "ASC"
    DESC = "DESC"


class SortBy(StrEnum):
    """The field a listing is sorted by (only the invoked time today)."""

    INVOKED_TIME = "invokedTime"


# -- validators ------------------------------------------------------------------


def _fail(attribute: attrs.Attribute[Any], message: str) -> ValidationError:
    return ValidationError(attribute.name, message)


def _one_of(enum: type[StrEnum], *, optional: bool = True) -> Any:
    """Validator: a member of ``enum``, a newer value as a non-empty string, or ``None``.

    Strings outside the documented set are sent as given (the API adds values
    over time; the server judges them); anything but a string is refused.
    """
    allowed = ", ".join(repr(m.value) for m in enum)

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if (value is not None or not optional) and (not isinstance(value, str) or not value):
            raise _fail(attribute, f"{value!r} is not one of {allowed} (or a newer value's string)")

    return check


_non_empty_str: Any = attribute(check_non_empty, optional=True)


def _is_bool(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise _fail(attribute, f"must be True or False, got {value!r}")


def _optional_instance(kind: type, what: str) -> Any:
    """Validator: ``None`` or an instance of ``kind`` (``what`` describes it for the message)."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, kind):
            raise _fail(attribute, f"must be {what}, got {value!r}")

    return check


def _int_range(low: int, high: int | None = None) -> Any:
    """Validator: ``None``, or an ``int`` within ``low..high``."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check_int(attribute.name, value, low, high)

    return check


def _aware(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, datetime):
        raise _fail(attribute, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(attribute, "must be timezone-aware (e.g. datetime.now(timezone.utc))")


def _redact(value: object) -> str:
    return "None" if value is None else "'***'"


# -- shared objects -----------------------------------------------------------------


@attrs.frozen
class StorageConfig:
    """Where a recording is uploaded; used both in requests and responses.

    ``access_key``, ``secret``, ``password`` and ``private_key`` are write-only
    on the API side and are redacted from ``repr``.
    """

    type: StorageType | str | None = attrs.field(default=None, validator=_one_of(StorageType))
    access_key: str | None = attrs.field(default=None, repr=_redact)
    auth_method: SftpAuthMethod | str | None = attrs.field(
        default=None, validator=_one_of(SftpAuthMethod)
    )
    bucket: str | None = None
    host: str | None = None
    password: str | None = attrs.field(default=None, repr=_redact)
    path: str | None = None
    port: int | None = attrs.field(default=None, validator=_int_range(0, 65_535))
    private_key: str | None = attrs.field(default=None, repr=_redact)
    region: str | None = None
    secret: str | None = attrs.field(default=None, repr=_redact)
    username: str | None = None


# -- responses ---------------------------------------------------------------------


@attrs.frozen
class Meeting:
    """The meeting a listed recording belongs to."""

    id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    live_stream_on_start: bool | None = None
    persist_chat: bool | None = None
    record_on_start: bool | None = None
    session_keep_alive_time_in_secs: int | None = None
    status: MeetingStatus | None = None
    summarize_on_end: bool | None = None
    title: str | None = None
    transcribe_on_end: bool | None = None
    recording_config: RecordingConfig | None = None


@attrs.frozen
class Caller:
    """Who started or stopped a recording (``user_id`` is ``user_Id`` on the wire)."""

    name: str | None = None
    type: CallerType | None = None
    user_id: str | None = None


@attrs.frozen
class StartReason:
    """Why and by whom a recording was started."""

    caller: Caller | None = None
    reason: StartReasonType | None = None


@attrs.frozen
class StopReason:
    """Why and by whom a recording was stopped."""

    caller: Caller | None = None
    reason: StopReasonType | None = None


@attrs.frozen
class Recording:
    """One recording, as every endpoint returns it.

    Only ``id``, ``status``, ``invoked_time`` and ``output_file_name`` are always
    filled (an answer without one of them, or with ``null``, is an
    :class:`APIResponseValidationError`); the rest is ``None`` until the
    lifecycle fills it. ``download_url`` is a presigned credential: do not log it.
    """

    id: str
    status: RecordingStatus
    invoked_time: datetime
    output_file_name: str
    audio_download_url: str | None = attrs.field(default=None, repr=False)
    download_url: str | None = attrs.field(default=None, repr=False)
    download_url_expiry: datetime | None = None
    file_size: int | None = None
    session_id: str | None = None
    started_time: datetime | None = None
    stopped_time: datetime | None = None
    recording_duration: int | None = None
    meeting: Meeting | None = None
    start_reason: StartReason | None = None
    stop_reason: StopReason | None = None
    storage_config: StorageConfig | None = None


@attrs.frozen
class Paging:
    """Offsets of a page within the full result and the total, as the server sent them.

    The paginator trusts these and ``len(data)``, never the ``per_page`` it asked for.
    """

    start_offset: int | None = None
    end_offset: int | None = None
    total_count: int | None = None


@attrs.frozen
class RecordingPage:
    """One page of the recordings list."""

    data: tuple[Recording, ...]
    paging: Paging


# -- request bodies -------------------------------------------------------------------


@attrs.frozen
class AudioConfig:
    """Audio settings of a new recording; ``export_file`` also uploads a separate audio file."""

    channel: AudioChannel | str | None = attrs.field(default=None, validator=_one_of(AudioChannel))
    codec: AudioCodec | str | None = attrs.field(default=None, validator=_one_of(AudioCodec))
    export_file: bool | None = None


@attrs.frozen
class WatermarkSize:
    """The size of a :class:`Watermark` in pixels."""

    height: int | None = attrs.field(default=None, validator=_int_range(1))
    width: int | None = attrs.field(default=None, validator=_int_range(1))


@attrs.frozen
class Watermark:
    """An image (``url``) drawn over the video, at ``position`` and ``size``."""

    position: WatermarkPosition | str | None = attrs.field(
        default=None, validator=_one_of(WatermarkPosition)
    )
    size: WatermarkSize | None = None
    url: str | None = None


@attrs.frozen
class VideoConfig:
    """Video settings of a new recording: codec, size in pixels and an optional watermark."""

    codec: VideoCodec | str | None = attrs.field(default=None, validator=_one_of(VideoCodec))
    export_file: bool | None = None
    height: int | None = attrs.field(default=None, validator=_int_range(1))
    width: int | None = attrs.field(default=None, validator=_int_range(1))
    watermark: Watermark | None = None


@attrs.frozen
class InteractiveConfig:
    """Embeds timed metadata in the recording (for interactive playback)."""

    type: InteractiveConfigType | str | None = attrs.field(
        default=None, validator=_one_of(InteractiveConfigType)
    )


@attrs.frozen
class RealtimeKitBucketConfig:
    """``enabled=False`` keeps files out of RealtimeKit's bucket (no download URLs).

    ``enabled`` is required by the API, so it is always sent.
    """

    enabled: bool = attrs.field(validator=_is_bool)


@attrs.frozen
class RtmpOutConfig:
    """Streams the recording live to an RTMP endpoint as well."""

    rtmp_url: str | None = None


@attrs.frozen
class RecordingConfig:
    """A meeting's recording defaults (``Meeting.recording_config``; response only)."""

    audio_config: AudioConfig | None = None
    file_name_prefix: str | None = None
    live_streaming_config: RtmpOutConfig | None = None
    max_seconds: int | None = None
    realtimekit_bucket_config: RealtimeKitBucketConfig | None = None
    storage_config: StorageConfig | None = None
    video_config: VideoConfig | None = None


@attrs.frozen
class StartRecordingParams:
    """Body of ``POST .../recordings``; unset fields are left out of the JSON."""

    meeting_id: str = attrs.field(validator=_non_empty_str)
    allow_multiple_recordings: bool | None = None
    audio_config: AudioConfig | None = None
    file_name_prefix: str | None = None
    interactive_config: InteractiveConfig | None = None
    max_seconds: int | None = attrs.field(
        default=None, validator=_int_range(MIN_MAX_SECONDS, MAX_MAX_SECONDS)
    )
    realtimekit_bucket_config: RealtimeKitBucketConfig | None = None
    rtmp_out_config: RtmpOutConfig | None = None
    storage_config: StorageConfig | None = None
    url: str | None = None
    video_config: VideoConfig | None = None


@attrs.frozen
class TrackOutput:
    """One destination of a track layer; ``STORAGE_CONFIG`` needs a ``storage_config``."""

    type: TrackOutputType | str = attrs.field(validator=_one_of(TrackOutputType, optional=False))
    storage_config: StorageConfig | None = None


def _outputs(value: Iterable[TrackOutput] | None) -> tuple[TrackOutput, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen
class TrackLayer:
    """One layer of a track recording.

    Current API: ``file_name_prefix`` and ``media_kind``. The seed's (legacy)
    API: ``outputs`` (and ``file_name_prefix``). One request uses one of them.
    """

    file_name_prefix: str | None = attrs.field(
        default=None, validator=_optional_instance(str, "a string")
    )
    media_kind: MediaKind | str | None = attrs.field(default=None, validator=_one_of(MediaKind))
    outputs: tuple[TrackOutput, ...] | None = attrs.field(default=None, converter=_outputs)


def _layers(
    _inst: object, attribute: attrs.Attribute[Any], value: Mapping[str, TrackLayer] | None
) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping) or not value:
        raise _fail(attribute, "needs at least one layer")
    for name, layer in value.items():
        if not isinstance(name, str) or not name:
            raise _fail(attribute, f"layer names must be non-empty strings, got {name!r}")
        if not isinstance(layer, TrackLayer):
            raise _fail(attribute, f"layer {name!r} must be a TrackLayer")


def _user_ids(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value  # type: ignore[return-value]  # a bare string is refused by the validator
    return tuple(value)


MAX_TRACK_USER_IDS: Final = 100


def _each_user_id(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple):
        raise _fail(attribute, f"must be a list of user ids, got {value!r}")
    if len(value) > MAX_TRACK_USER_IDS:
        raise _fail(attribute, f"at most {MAX_TRACK_USER_IDS} user ids, got {len(value)}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise _fail(attribute, f"user ids must be non-empty strings, got {item!r}")


@attrs.frozen
class StartTrackRecordingParams:
    """Body of ``POST .../recordings/track``, in either generation of the API.

    Current: ``meeting_id``, optional ``layers`` of ``{file_name_prefix,
    media_kind}`` and optional ``user_ids``. Legacy (the seed's): ``layers``
    whose every layer has ``outputs``, and optional ``max_seconds``. The
    arguments decide which body is sent; mixing them is a :class:`ValidationError`.
    """

    meeting_id: str = attrs.field(validator=_non_empty_str)
    layers: Mapping[str, TrackLayer] | None = attrs.field(default=None, validator=_layers)
    user_ids: tuple[str, ...] | None = attrs.field(
        default=None, converter=_user_ids, validator=_each_user_id
    )
    max_seconds: int | None = attrs.field(
        default=None, validator=_int_range(MIN_MAX_SECONDS, MAX_MAX_SECONDS)
    )

    def __attrs_post_init__(self) -> None:
        layers = list((self.layers or {}).items())
        legacy = [f"layers.{n}.outputs" for n, layer in layers if layer.outputs is not None]
        current = [f"layers.{n}.media_kind" for n, layer in layers if layer.media_kind is not None]
        if self.max_seconds is not None:
            legacy.insert(0, "max_seconds")
        if self.user_ids is not None:
            current.insert(0, "user_ids")
        if legacy and current:
            raise ValidationError(
                current[0],
                f"belongs to the current track-recording body, {legacy[0]} to the legacy "
                "one (layers with outputs, max_seconds): use one of them",
            )
        if legacy:
            if not layers:
                raise ValidationError("layers", "the legacy body (max_seconds) needs layers")
            for name, layer in layers:
                if not layer.outputs:
                    raise ValidationError(
                        f"layers.{name}.outputs",
                        "the legacy body (outputs, max_seconds) needs at least one output "
                        "in every layer",
                    )

    @property
    def legacy(self) -> bool:
        """Whether this is the seed's (legacy) body: layers with outputs, max_seconds."""
        return self.max_seconds is not None or any(
            layer.outputs is not None for layer in (self.layers or {}).values()
        )


@attrs.frozen
class RecordingActionParams:
    """Body of ``PUT .../recordings/{recording_id}``."""

    action: RecordingAction | str = attrs.field(validator=_one_of(RecordingAction, optional=False))


def _statuses(value: RecordingStatus | str | Any) -> tuple[RecordingStatus | str, ...]:
    """Accept one status or an iterable of them (a bare string is one status)."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (value,)  # checked by the validator
    return tuple(value)


def _each_status(_inst: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    check = _one_of(RecordingStatus, optional=False)
    for item in value:
        check(_inst, attribute, item)


@attrs.frozen
class ListRecordingsParams:
    """Query of ``GET .../recordings``; turned into query pairs by ``_sansio``."""

    meeting_id: str | None = attrs.field(default=None, validator=_non_empty_str)
    status: tuple[RecordingStatus | str, ...] = attrs.field(
        default=(), converter=_statuses, validator=_each_status
    )
    search: str | None = attrs.field(default=None, validator=_optional_instance(str, "a string"))
    start_time: datetime | None = attrs.field(default=None, validator=_aware)
    end_time: datetime | None = attrs.field(default=None, validator=_aware)
    # A bool, not anything truthy: expired="false" must not mean expired=true.
    expired: bool | None = attrs.field(
        default=None, validator=_optional_instance(bool, "True or False")
    )
    sort_by: SortBy | str | None = attrs.field(default=None, validator=_one_of(SortBy))
    sort_order: SortOrder | str | None = attrs.field(default=None, validator=_one_of(SortOrder))
    page_no: int = attrs.field(default=1, validator=_int_range(1))
    per_page: int = attrs.field(default=100, validator=_int_range(1))

    def __attrs_post_init__(self) -> None:
        if self.start_time and self.end_time and self.start_time > self.end_time:
            raise ValidationError("start_time", "must not be after end_time")
