"""In-memory state of the emulated Recordings API: models, lifecycle, listing.

Everything here is plain synchronous logic driven by an :class:`EmulatedClock`, so
it can be unit-tested without a server. Times are integer epoch milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from ._clock import EmulatedClock
from ._util import ApiError, iso_to_ms, new_uuid

__all__ = [
    "ACTIONS",
    "ACTIVE_STATUSES",
    "LifecycleConfig",
    "ListQuery",
    "Meeting",
    "PageWindow",
    "Recording",
    "RecordingStore",
    "STATUSES",
    "StartRequest",
    "audio_file_size",
    "check_action",
    "compute_file_size",
    "page_window",
    "parse_list_query",
    "parse_start_body",
    "parse_track_body",
    "sanitize_storage_config",
]

STATUSES: Final = ("INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED", "PAUSED")
ACTIVE_STATUSES: Final = frozenset({"INVOKED", "RECORDING", "PAUSED"})
ACTIONS: Final = ("pause", "resume", "stop")
STORAGE_TYPES: Final = frozenset({"aws", "azure", "digitalocean", "gcs", "sftp"})
# Write-only fields of a storage config: accepted on input, never echoed back.
STORAGE_SECRETS: Final = frozenset({"access_key", "secret", "password", "private_key"})
TRACK_OUTPUT_TYPES: Final = frozenset({"REALTIMEKIT_BUCKET", "STORAGE_CONFIG"})
# The schema's enums for request fields; anything else answers 400.
AUDIO_CODECS: Final = ("MP3", "AAC")
AUDIO_CHANNELS: Final = ("mono", "stereo")
VIDEO_CODECS: Final = ("H264", "VP8")
WATERMARK_POSITIONS: Final = ("left top", "right top", "left bottom", "right bottom")
MEDIA_KINDS: Final = ("audio",)
MAX_TRACK_USER_IDS: Final = 100
MIN_MAX_SECONDS: Final = 60
MAX_MAX_SECONDS: Final = 86400

_ALLOWED_FROM: Final[Mapping[str, frozenset[str]]] = {
    "pause": frozenset({"RECORDING"}),
    "resume": frozenset({"PAUSED"}),
    "stop": frozenset({"INVOKED", "RECORDING", "PAUSED"}),
}


@attrs.frozen
class LifecycleConfig:
    """Timing and sizing knobs of the emulated lifecycle (durations in emulated seconds)."""

    start_delay: float = 2.0
    upload_delay: float = 3.0
    min_duration: float = 5.0
    url_ttl: float = 7 * 86400.0
    bytes_per_second: int = 8192
    auto_stop_reason: str = "ALL_PEERS_LEFT"
    default_per_page: int = 20
    max_per_page: int = 100
    auto_create_meetings: bool = True


@attrs.define(eq=False)
class Meeting:
    """A meeting that recordings belong to (only what the recordings API exposes)."""

    id: str
    title: str
    created_ms: int
    updated_ms: int
    status: str = "ACTIVE"
    live_stream_on_start: bool = False
    persist_chat: bool = False
    record_on_start: bool = False
    session_keep_alive_time_in_secs: int = 60
    summarize_on_end: bool = False
    live_session_id: str | None = None
    session_started_ms: int | None = None
    session_ended_ms: int | None = None
    search_text: str = ""

    def __attrs_post_init__(self) -> None:
        self.search_text = f"{self.id}\n{self.title}".lower()


@attrs.define(eq=False)
class Recording:
    """One recording and its lifecycle bookkeeping."""

    id: str
    meeting_id: str
    status: str
    invoked_ms: int
    output_file_name: str
    max_seconds: int = MAX_MAX_SECONDS
    kind: str = "composite"
    has_audio: bool = False
    bucket_enabled: bool = True
    storage_config: dict[str, Any] | None = None
    start_reason: dict[str, Any] | None = None
    stop_reason: dict[str, Any] | None = None
    started_ms: int | None = None
    stopped_ms: int | None = None
    session_id: str | None = None
    file_size: int | None = None
    file_size_override: int | None = None
    expiry_ms: int | None = None
    duration_s: int = 0
    recorded_ms: int = 0
    segment_start_ms: int | None = None
    layers: dict[str, Any] | None = None
    user_ids: tuple[str, ...] = ()
    config: dict[str, Any] = attrs.field(factory=dict)
    gen: int = 0
    seq: int = 0


@attrs.frozen
class StartRequest:
    """A validated start (composite or track) request body."""

    meeting_id: str
    kind: str = "composite"
    allow_multiple: bool = False
    has_audio: bool = False
    bucket_enabled: bool = True
    storage_config: dict[str, Any] | None = None
    file_name_prefix: str | None = None
    max_seconds: int = MAX_MAX_SECONDS
    layers: dict[str, Any] | None = None
    user_ids: tuple[str, ...] = ()
    config: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ListQuery:
    """A validated list query; ``filter_key`` identifies its (unpaged) result set."""

    meeting_id: str | None = None
    statuses: frozenset[str] = frozenset()
    search: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    expired: bool | None = None
    descending: bool = True
    page_no: int = 1
    per_page: int = 20

    def filter_key(self) -> tuple[Any, ...]:
        """Everything but the paging, for caching the sorted filtered list."""
        return (
            self.meeting_id,
            self.statuses,
            self.search,
            self.start_ms,
            self.end_ms,
            self.expired,
            self.descending,
        )


@attrs.frozen
class PageWindow:
    """Slice bounds and the 1-based inclusive ``paging`` offsets of one page.

    Invariant: ``end_offset - start_offset + 1`` equals the number of items, so an
    empty page (past the end, or no matches) has ``end_offset == start_offset - 1``.
    """

    start_index: int
    stop_index: int
    start_offset: int
    end_offset: int
    total_count: int


def page_window(total: int, page_no: int, per_page: int) -> PageWindow:
    """Compute the slice and offsets for ``page_no`` (1-based). Raises ValueError if < 1."""
    if page_no < 1 or per_page < 1 or total < 0:
        raise ValueError("page_no and per_page must be >= 1 and total >= 0")
    start = (page_no - 1) * per_page
    count = max(0, min(total, start + per_page) - start)
    return PageWindow(start, start + count, start + 1, start + count, total)


def check_action(status: str, action: object) -> str:
    """Validate a PUT action against the current status; returns the action.

    Raises ApiError(400) naming either the invalid action or the invalid transition.
    """
    if not isinstance(action, str) or action not in _ALLOWED_FROM:
        raise ApiError(400, f"invalid action {action!r}: expected one of pause, resume, stop")
    if status not in _ALLOWED_FROM[action]:
        allowed = ", ".join(sorted(_ALLOWED_FROM[action]))
        raise ApiError(
            400,
            f"invalid transition: cannot {action} a recording in status {status} "
            f"(allowed from {allowed})",
        )
    return action


def compute_file_size(recording_id: str, duration_s: int, bytes_per_second: int) -> int:
    """Deterministic video file size for a recording of ``duration_s`` seconds."""
    bps = max(1, bytes_per_second)
    return max(1, duration_s * bps + zlib.crc32(recording_id.encode()) % bps)


def audio_file_size(video_size: int) -> int:
    """Size of the separate audio file: an eighth of the video file, at least 1 byte."""
    return max(1, video_size // 8)


def _parse_count(name: str, raw: str) -> int:
    """A paging number as the schema types it: any JSON number >= 0; fractions are floored.

    Raises ApiError(400) for anything else (negative, not a number, inf/nan).
    """
    try:
        value = float(raw.strip())
    except ValueError:
        raise ApiError(400, f"{name} must be a number >= 0, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, f"{name} must be a number >= 0, got {raw!r}")
    return int(value)


def _parse_time(name: str, raw: str) -> int:
    try:
        return iso_to_ms(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 timestamp, got {raw!r}") from None


def parse_list_query(
    pairs: Iterable[tuple[str, str]],
    *,
    default_per_page: int = 20,
    max_per_page: int = 100,
) -> ListQuery:
    """Validate list query parameters (repeated ``status`` keys allowed).

    Raises ApiError(400) for bad paging (not a number >= 0), unknown status, sort
    or boolean values, and unparseable times. Unknown parameters are ignored; a
    repeated scalar uses the last.
    """
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        multi.setdefault(key, []).append(value)

    def last(key: str) -> str | None:
        values = multi.get(key)
        return values[-1] if values else None

    statuses: set[str] = set()
    for value in multi.get("status", []):
        if value not in STATUSES:
            raise ApiError(400, f"invalid status {value!r}: expected one of {', '.join(STATUSES)}")
        statuses.add(value)

    sort_by = last("sort_by")
    if sort_by is not None and sort_by != "invokedTime":
        raise ApiError(400, f"invalid sort_by {sort_by!r}: expected invokedTime")
    sort_order = last("sort_order")
    if sort_order is not None and sort_order not in ("ASC", "DESC"):
        raise ApiError(400, f"invalid sort_order {sort_order!r}: expected ASC or DESC")

    expired_raw = last("expired")
    expired: bool | None = None
    if expired_raw is not None:
        if expired_raw not in ("true", "false"):
            raise ApiError(400, f"expired must be true or false, got {expired_raw!r}")
        expired = expired_raw == "true"

    # The schema admits any number >= 0 and documents no base and no maximum. Here:
    # page_no 0 and 1 are both the first page, per_page 0 is the default, and a
    # per_page above max_per_page is silently capped (as such servers do).
    page_raw, per_page_raw = last("page_no"), last("per_page")
    page_no = _parse_count("page_no", page_raw) if page_raw is not None else 1
    per_page = _parse_count("per_page", per_page_raw) if per_page_raw is not None else 0
    start_raw, end_raw = last("start_time"), last("end_time")
    search = last("search")
    return ListQuery(
        meeting_id=last("meeting_id") or None,
        statuses=frozenset(statuses),
        search=search.lower() if search else None,
        start_ms=_parse_time("start_time", start_raw) if start_raw is not None else None,
        end_ms=_parse_time("end_time", end_raw) if end_raw is not None else None,
        expired=expired,
        descending=sort_order != "ASC",
        page_no=max(1, page_no),
        per_page=min(per_page or default_per_page, max_per_page),
    )


def sanitize_storage_config(value: object, field: str = "storage_config") -> dict[str, Any]:
    """Validate a storage config and drop its write-only secrets. Raises ApiError(400)."""
    if not isinstance(value, dict):
        raise ApiError(400, f"{field} must be an object")
    kind = value.get("type")
    if kind not in STORAGE_TYPES:
        raise ApiError(
            400, f"{field}.type must be one of {', '.join(sorted(STORAGE_TYPES))}, got {kind!r}"
        )
    auth = value.get("auth_method")
    if auth is not None and auth not in ("KEY", "PASSWORD"):
        raise ApiError(400, f"{field}.auth_method must be KEY or PASSWORD, got {auth!r}")
    return {k: v for k, v in value.items() if k not in STORAGE_SECRETS}


def _require_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _meeting_id(body: Mapping[str, Any]) -> str:
    meeting_id = body.get("meeting_id")
    if not isinstance(meeting_id, str) or not meeting_id.strip():
        raise ApiError(400, "meeting_id is required and must be a non-empty string")
    return meeting_id


def _max_seconds(body: Mapping[str, Any]) -> int:
    value = body.get("max_seconds")
    if value is None:
        return MAX_MAX_SECONDS
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ApiError(400, f"max_seconds must be an integer, got {value!r}")
    if not MIN_MAX_SECONDS <= value <= MAX_MAX_SECONDS:
        raise ApiError(
            400, f"max_seconds must be between {MIN_MAX_SECONDS} and {MAX_MAX_SECONDS}, got {value}"
        )
    return int(value)


def _enum(obj: Mapping[str, Any], key: str, allowed: Sequence[str], where: str) -> Any:
    value = obj.get(key)
    if value is not None and value not in allowed:
        raise ApiError(400, f"{where}{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _int_between(obj: Mapping[str, Any], key: str, low: int, high: int | None, where: str) -> None:
    value = obj.get(key)
    if value is None:
        return
    bound = f"between {low} and {high}" if high is not None else f">= {low}"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != int(value)
        or value < low
        or (high is not None and value > high)
    ):
        raise ApiError(400, f"{where}{key} must be an integer {bound}, got {value!r}")


def _typed(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        expected = {dict: "an object", bool: "a boolean", str: "a string", list: "a list"}
        raise ApiError(400, f"{where}{key} must be {expected.get(kind, kind.__name__)}")
    return value


def _check_video_config(video: Mapping[str, Any]) -> None:
    where = "video_config."
    _enum(video, "codec", VIDEO_CODECS, where)
    _typed(video, "export_file", bool, where)
    _int_between(video, "height", 1, 1920, where)
    _int_between(video, "width", 1, 1920, where)
    watermark = _typed(video, "watermark", dict, where)
    if watermark is not None:
        _enum(watermark, "position", WATERMARK_POSITIONS, where + "watermark.")
        _typed(watermark, "url", str, where + "watermark.")
        size = _typed(watermark, "size", dict, where + "watermark.")
        if size is not None:
            _int_between(size, "height", 1, None, where + "watermark.size.")
            _int_between(size, "width", 1, None, where + "watermark.size.")


def parse_start_body(body: object) -> StartRequest:
    """Validate a composite start body as the schema does. Raises ApiError(400) naming the field.

    Rejected: wrong types, values outside the schema's enums and ranges, and
    nested configs missing a key the schema requires (``storage_config.type``,
    ``realtimekit_bucket_config.enabled``).
    """
    data = _require_object(body)
    meeting_id = _meeting_id(data)
    max_seconds = _max_seconds(data)
    allow_multiple = _typed(data, "allow_multiple_recordings", bool, "")
    prefix = _typed(data, "file_name_prefix", str, "")
    _typed(data, "url", str, "")
    for key in ("video_config", "interactive_config", "rtmp_out_config"):
        _typed(data, key, dict, "")
    audio = _typed(data, "audio_config", dict, "")
    if audio is not None:
        _enum(audio, "codec", AUDIO_CODECS, "audio_config.")
        _enum(audio, "channel", AUDIO_CHANNELS, "audio_config.")
        _typed(audio, "export_file", bool, "audio_config.")
    if data.get("video_config") is not None:
        _check_video_config(data["video_config"])
    if data.get("interactive_config") is not None:
        _enum(data["interactive_config"], "type", ("ID3",), "interactive_config.")
    if data.get("rtmp_out_config") is not None:
        _typed(data["rtmp_out_config"], "rtmp_url", str, "rtmp_out_config.")
    bucket = _typed(data, "realtimekit_bucket_config", dict, "")
    bucket_enabled = True
    if bucket is not None:
        if not isinstance(bucket.get("enabled"), bool):
            raise ApiError(
                400, "realtimekit_bucket_config.enabled is required and must be a boolean"
            )
        bucket_enabled = bucket["enabled"]
    storage_raw = data.get("storage_config")
    storage = sanitize_storage_config(storage_raw) if storage_raw is not None else None
    config = {
        k: data[k]
        for k in ("audio_config", "video_config", "interactive_config", "url", "rtmp_out_config")
        if data.get(k) is not None
    }
    return StartRequest(
        meeting_id=meeting_id,
        allow_multiple=bool(allow_multiple),
        has_audio=audio is not None,
        bucket_enabled=bucket_enabled,
        storage_config=storage,
        file_name_prefix=prefix,
        max_seconds=max_seconds,
        config=config,
    )


def parse_track_body(body: object) -> StartRequest:
    """Validate a track-recording body of either generation. Raises ApiError(400).

    Current (the published schema): ``meeting_id``, optional ``layers`` of
    ``{file_name_prefix, media_kind}``, optional ``user_ids`` (up to 100).
    Legacy (the seed): ``layers`` whose layers have ``outputs[]``, and
    ``max_seconds``. A body mixing the two is rejected.
    """
    data = _require_object(body)
    layers = data.get("layers")
    legacy = data.get("max_seconds") is not None or (
        isinstance(layers, dict)
        and any(isinstance(layer, dict) and "outputs" in layer for layer in layers.values())
    )
    current = data.get("user_ids") is not None or (
        isinstance(layers, dict)
        and any(isinstance(layer, dict) and "media_kind" in layer for layer in layers.values())
    )
    if legacy and current:
        raise ApiError(
            400,
            "a track recording body has either user_ids/layers.*.media_kind (current) "
            "or layers.*.outputs/max_seconds (legacy), not both",
        )
    return _legacy_track_body(data) if legacy else _current_track_body(data)


def _current_track_body(data: dict[str, Any]) -> StartRequest:
    meeting_id = _meeting_id(data)
    layers = _typed(data, "layers", dict, "")
    clean_layers: dict[str, Any] = {}
    prefix: str | None = None
    for name, layer in (layers or {}).items():
        where = f"layers.{name}."
        if not isinstance(layer, dict):
            raise ApiError(400, f"layers.{name} must be an object")
        layer_prefix = _typed(layer, "file_name_prefix", str, where)
        kind = _enum(layer, "media_kind", MEDIA_KINDS, where)
        prefix = prefix or layer_prefix
        clean_layers[name] = {"file_name_prefix": layer_prefix, "media_kind": kind or "audio"}
    user_ids = _typed(data, "user_ids", list, "")
    if user_ids is not None:
        if len(user_ids) > MAX_TRACK_USER_IDS:
            raise ApiError(400, f"user_ids holds at most {MAX_TRACK_USER_IDS} ids")
        if not all(isinstance(u, str) for u in user_ids):
            raise ApiError(400, "user_ids must be a list of strings")
    return StartRequest(
        meeting_id=meeting_id,
        kind="track",
        has_audio=True,
        file_name_prefix=prefix,
        layers=clean_layers or None,
        user_ids=tuple(user_ids or ()),
    )


def _legacy_track_body(data: dict[str, Any]) -> StartRequest:
    meeting_id = _meeting_id(data)
    max_seconds = _max_seconds(data)
    layers = data.get("layers")
    if not isinstance(layers, dict) or not layers:
        raise ApiError(400, "layers is required and must be a non-empty object")
    bucket_enabled = False
    storage: dict[str, Any] | None = None
    prefix: str | None = None
    clean_layers: dict[str, Any] = {}
    for name, layer in layers.items():
        where = f"layers.{name}"
        if not isinstance(layer, dict):
            raise ApiError(400, f"{where} must be an object")
        layer_prefix = layer.get("file_name_prefix")
        if layer_prefix is not None and not isinstance(layer_prefix, str):
            raise ApiError(400, f"{where}.file_name_prefix must be a string")
        prefix = prefix or layer_prefix
        outputs = layer.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            raise ApiError(400, f"{where}.outputs must be a non-empty list")
        clean_outputs = []
        for i, output in enumerate(outputs):
            kind = output.get("type") if isinstance(output, dict) else None
            if kind not in TRACK_OUTPUT_TYPES:
                raise ApiError(
                    400, f"{where}.outputs[{i}].type must be REALTIMEKIT_BUCKET or STORAGE_CONFIG"
                )
            assert isinstance(output, dict)
            clean: dict[str, Any] = {"type": kind}
            if kind == "REALTIMEKIT_BUCKET":
                bucket_enabled = True
            else:
                if output.get("storage_config") is None:
                    raise ApiError(400, f"{where}.outputs[{i}].storage_config is required")
                clean["storage_config"] = sanitize_storage_config(
                    output["storage_config"], f"{where}.outputs[{i}].storage_config"
                )
                storage = storage or clean["storage_config"]
            clean_outputs.append(clean)
        clean_layers[name] = {"file_name_prefix": layer_prefix, "outputs": clean_outputs}
    return StartRequest(
        meeting_id=meeting_id,
        kind="track",
        bucket_enabled=bucket_enabled,
        storage_config=storage,
        file_name_prefix=prefix,
        max_seconds=max_seconds,
        layers=clean_layers,
    )


Listener = Callable[[Recording, Meeting], None]


@attrs.define
class _CacheEntry:
    version: int
    valid_until_ms: float
    items: list[Recording]


class RecordingStore:
    """All recordings and meetings, with lazy, time-ordered lifecycle transitions.

    Due transitions sit in a heap; :meth:`run_due` applies every one whose time has
    come, each stamped at its own due time (not "now"), so lazy evaluation yields
    the same timestamps as a real-time worker would. Any mutation bumps
    ``version``, which invalidates the per-query list cache.
    """

    def __init__(
        self,
        clock: EmulatedClock,
        config: LifecycleConfig,
        *,
        ids_rng: random.Random,
        caller: Mapping[str, Any],
        cache_size: int = 64,
    ) -> None:
        self.clock = clock
        self.config = config
        self.recordings: dict[str, Recording] = {}
        self.meetings: dict[str, Meeting] = {}
        self.version = 0
        self._ids_rng = ids_rng
        self._caller = dict(caller)
        self._heap: list[tuple[int, int, str, int]] = []
        self._seq = itertools.count()
        self._by_meeting: dict[str, list[Recording]] = {}
        self._active: dict[str, set[str]] = {}
        self._listeners: list[Listener] = []
        self._cache: OrderedDict[tuple[Any, ...], _CacheEntry] = OrderedDict()
        self._cache_size = cache_size

    # -- wiring -------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(recording, meeting)`` after every status change."""
        self._listeners.append(listener)

    def new_id(self) -> str:
        """Next id from the seeded id stream."""
        return new_uuid(self._ids_rng)

    def add_meeting(self, meeting: Meeting) -> Meeting:
        """Register a meeting (replacing one with the same id)."""
        self.meetings[meeting.id] = meeting
        self._by_meeting.setdefault(meeting.id, [])
        self.version += 1
        return meeting

    def load(self, meetings: Sequence[Meeting], recordings: Sequence[Recording]) -> None:
        """Bulk-insert seeded data without notifying listeners."""
        for meeting in meetings:
            self.meetings[meeting.id] = meeting
            self._by_meeting.setdefault(meeting.id, [])
        for rec in recordings:
            self._insert(rec)
        self.version += 1

    def _insert(self, rec: Recording) -> None:
        rec.seq = len(self.recordings)
        self.recordings[rec.id] = rec
        self._by_meeting.setdefault(rec.meeting_id, []).append(rec)
        if rec.status in ACTIVE_STATUSES:
            self._active.setdefault(rec.meeting_id, set()).add(rec.id)
        self._schedule(rec)

    # -- lifecycle engine ---------------------------------------------------------

    def _schedule(self, rec: Recording) -> None:
        cfg = self.config
        due: int | None = None
        if rec.status == "INVOKED":
            due = rec.invoked_ms + round(cfg.start_delay * 1000)
        elif rec.status == "RECORDING" and rec.segment_start_ms is not None:
            due = rec.segment_start_ms + rec.max_seconds * 1000 - rec.recorded_ms
        elif rec.status == "UPLOADING" and rec.stopped_ms is not None:
            due = rec.stopped_ms + round(cfg.upload_delay * 1000)
        if due is not None:
            heapq.heappush(self._heap, (due, next(self._seq), rec.id, rec.gen))

    def next_due_ms(self) -> int | None:
        """Emulated time of the earliest pending transition (may be stale), or None."""
        return self._heap[0][0] if self._heap else None

    def run_due(self, now_ms: int | None = None) -> int:
        """Apply every transition due at or before now; returns how many were applied."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        applied = 0
        while self._heap and self._heap[0][0] <= now:
            due, _, rid, gen = heapq.heappop(self._heap)
            rec = self.recordings.get(rid)
            if rec is None or rec.gen != gen:
                continue
            if rec.status == "INVOKED":
                self._begin(rec, due)
            elif rec.status == "RECORDING":
                self._stop(rec, due, {"reason": self.config.auto_stop_reason})
            elif rec.status == "UPLOADING":
                self._finish_upload(rec, due)
            applied += 1
        return applied

    def _set_status(self, rec: Recording, status: str, at_ms: int) -> None:
        was_active = rec.status in ACTIVE_STATUSES
        rec.status = status
        rec.gen += 1
        self.version += 1
        meeting = self.meetings[rec.meeting_id]
        meeting.updated_ms = max(meeting.updated_ms, at_ms)
        active = self._active.setdefault(rec.meeting_id, set())
        if status in ACTIVE_STATUSES:
            active.add(rec.id)
        elif was_active:
            active.discard(rec.id)
            if not active and meeting.live_session_id is not None:
                meeting.live_session_id = None
                meeting.session_ended_ms = at_ms
        self._schedule(rec)
        for listener in self._listeners:
            listener(rec, meeting)

    def _begin(self, rec: Recording, at_ms: int) -> None:
        meeting = self.meetings[rec.meeting_id]
        if meeting.live_session_id is None:
            meeting.live_session_id = self.new_id()
            meeting.session_started_ms = at_ms
            meeting.session_ended_ms = None
        rec.session_id = meeting.live_session_id
        rec.started_ms = at_ms
        rec.segment_start_ms = at_ms
        self._set_status(rec, "RECORDING", at_ms)

    def _stop(self, rec: Recording, at_ms: int, reason: dict[str, Any]) -> None:
        if rec.status == "RECORDING" and rec.segment_start_ms is not None:
            rec.recorded_ms += at_ms - rec.segment_start_ms
        rec.segment_start_ms = None
        rec.stopped_ms = at_ms
        rec.duration_s = rec.recorded_ms // 1000
        rec.stop_reason = reason
        too_short = rec.recorded_ms < self.config.min_duration * 1000
        self._set_status(rec, "ERRORED" if too_short else "UPLOADING", at_ms)

    def _finish_upload(self, rec: Recording, at_ms: int) -> None:
        rec.file_size = rec.file_size_override or compute_file_size(
            rec.id, rec.duration_s, self.config.bytes_per_second
        )
        if rec.bucket_enabled:
            # Whole seconds, so the signed X-Expires and the JSON expiry agree exactly.
            rec.expiry_ms = (at_ms + round(self.config.url_ttl * 1000)) // 1000 * 1000
        self._set_status(rec, "UPLOADED", at_ms)

    # -- API operations -----------------------------------------------------------

    def get(self, recording_id: str) -> Recording:
        """The recording with this id. Raises ApiError(404)."""
        rec = self.recordings.get(recording_id)
        if rec is None:
            raise ApiError(404, f"recording {recording_id} not found")
        return rec

    def get_active(self, meeting_id: str) -> Recording:
        """The most recently started active recording of a meeting. Raises ApiError(404)."""
        ids = self._active.get(meeting_id)
        if not ids:
            raise ApiError(404, f"no active recording found for meeting {meeting_id}")
        return max((self.recordings[i] for i in ids), key=lambda r: (r.invoked_ms, r.seq))

    def ensure_meeting(self, meeting_id: str, now_ms: int) -> Meeting:
        """The meeting, auto-created when allowed. Raises ApiError(404/400)."""
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            if not self.config.auto_create_meetings:
                raise ApiError(404, f"meeting {meeting_id} not found")
            meeting = self.add_meeting(
                Meeting(meeting_id, f"Meeting {meeting_id[:8]}", now_ms, now_ms)
            )
        if meeting.status != "ACTIVE":
            raise ApiError(400, f"meeting {meeting_id} is {meeting.status}; cannot record it")
        return meeting

    def start(self, req: StartRequest) -> Recording:
        """Create an INVOKED recording. Raises ApiError(409) when one is already active."""
        now = self.clock.now_ms()
        self.run_due(now)
        self.ensure_meeting(req.meeting_id, now)
        if not req.allow_multiple:
            for rid in self._active.get(req.meeting_id, ()):
                if self.recordings[rid].kind == req.kind:
                    raise ApiError(
                        409, f"meeting {req.meeting_id} already has an active recording {rid}"
                    )
        rid = self.new_id()
        prefix = req.file_name_prefix or "recording"
        config = dict(req.config)
        config["max_seconds"] = req.max_seconds
        if req.file_name_prefix is not None:
            config["file_name_prefix"] = req.file_name_prefix
        rec = Recording(
            id=rid,
            meeting_id=req.meeting_id,
            status="INVOKED",
            invoked_ms=now,
            output_file_name=f"{prefix}_{req.meeting_id}_{now}.mp4",
            max_seconds=req.max_seconds,
            kind=req.kind,
            has_audio=req.has_audio,
            bucket_enabled=req.bucket_enabled,
            storage_config=req.storage_config,
            start_reason={"caller": dict(self._caller), "reason": "API_CALL"},
            layers=req.layers,
            user_ids=req.user_ids,
            config=config,
        )
        self._insert(rec)
        self.version += 1
        for listener in self._listeners:
            listener(rec, self.meetings[rec.meeting_id])
        return rec

    def control(self, recording_id: str, action: object) -> Recording:
        """Apply pause/resume/stop. Raises ApiError(404) or ApiError(400)."""
        now = self.clock.now_ms()
        self.run_due(now)
        rec = self.get(recording_id)
        act = check_action(rec.status, action)
        if act == "pause":
            if rec.segment_start_ms is not None:
                rec.recorded_ms += now - rec.segment_start_ms
            rec.segment_start_ms = None
            self._set_status(rec, "PAUSED", now)
        elif act == "resume":
            rec.segment_start_ms = now
            self._set_status(rec, "RECORDING", now)
        else:
            self._stop(rec, now, {"caller": dict(self._caller), "reason": "API_CALL"})
        return rec

    def set_file_size(self, recording_id: str, size: int) -> None:
        """Override the video file size (now if uploaded, else at upload). Raises KeyError."""
        if size < 1:
            raise ValueError("size must be >= 1")
        rec = self.recordings[recording_id]
        rec.file_size_override = size
        if rec.file_size is not None:
            rec.file_size = size
        self.version += 1

    # -- listing ------------------------------------------------------------------

    def query(self, query: ListQuery, now_ms: int | None = None) -> list[Recording]:
        """The full sorted, filtered result list (cached per filter key and version)."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        key = query.filter_key()
        entry = self._cache.get(key)
        if entry is not None and entry.version == self.version and now < entry.valid_until_ms:
            self._cache.move_to_end(key)
            return entry.items
        items, valid_until = self._compute(query, now)
        self._cache[key] = _CacheEntry(self.version, valid_until, items)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return items

    def _compute(self, q: ListQuery, now: int) -> tuple[list[Recording], float]:
        pool: Iterable[Recording]
        if q.meeting_id is not None:
            pool = self._by_meeting.get(q.meeting_id, [])
        else:
            pool = self.recordings.values()
        if q.search:
            needle = q.search
            matching = {m.id for m in self.meetings.values() if needle in m.search_text}
            pool = [r for r in pool if r.meeting_id in matching]
        if q.statuses:
            pool = [r for r in pool if r.status in q.statuses]
        if q.start_ms is not None:
            start = q.start_ms
            pool = [r for r in pool if r.invoked_ms >= start]
        if q.end_ms is not None:
            end = q.end_ms
            pool = [r for r in pool if r.invoked_ms <= end]
        valid_until: float = float("inf")
        if q.expired is not None:
            # The answer flips when the next still-valid URL expires; cache until then.
            with_expiry = [r for r in pool if r.expiry_ms is not None]
            upcoming = [
                r.expiry_ms for r in with_expiry if r.expiry_ms is not None and r.expiry_ms > now
            ]
            if upcoming:
                valid_until = min(upcoming)
            want = q.expired
            pool = [
                r for r in with_expiry if (r.expiry_ms is not None and r.expiry_ms <= now) == want
            ]
        result = sorted(pool, key=lambda r: (r.invoked_ms, r.id), reverse=q.descending)
        return result, valid_until

    def list_page(self, query: ListQuery) -> tuple[list[Recording], PageWindow]:
        """One page of results and its paging window, after applying due transitions."""
        now = self.clock.now_ms()
        self.run_due(now)
        items = self.query(query, now)
        window = page_window(len(items), query.page_no, query.per_page)
        return items[window.start_index : window.stop_index], window
