"""Request parsing of the emulated Recordings API: query strings and JSON bodies in,
typed requests or :class:`EmulatorHTTPError` (400) out.

Pure functions with no server and no state, so each rule is tested on its own;
the HTTP layer (``_app``) calls them and the store (``_state``) receives only
validated requests. The enums and ranges are the published schema's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from ._util import EmulatorHTTPError, iso_to_ms

__all__ = [
    "ListQuery",
    "MAX_MAX_SECONDS",
    "STATUSES",
    "StartRequest",
    "parse_control_body",
    "parse_json_body",
    "parse_list_query",
    "parse_start_body",
    "parse_track_body",
    "sanitize_storage_config",
]

STATUSES: Final = ("INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED", "PAUSED")
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


def _parse_count(name: str, raw: str) -> int:
    """A paging number as the schema types it: any JSON number >= 0; fractions are floored.

    Raises EmulatorHTTPError(400) for anything else (negative, not a number, inf/nan).
    """
    try:
        value = float(raw.strip())
    except ValueError:
        raise EmulatorHTTPError(400, f"{name} must be a number >= 0, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise EmulatorHTTPError(400, f"{name} must be a number >= 0, got {raw!r}")
    return int(value)


def _parse_time(name: str, raw: str) -> int:
    try:
        return iso_to_ms(raw)
    except ValueError:
        raise EmulatorHTTPError(400, f"{name} must be an ISO 8601 timestamp, got {raw!r}") from None


def parse_list_query(
    pairs: Iterable[tuple[str, str]],
    *,
    default_per_page: int = 20,
    max_per_page: int = 100,
) -> ListQuery:
    """Validate list query parameters (repeated ``status`` keys allowed).

    Raises EmulatorHTTPError(400) for bad paging (not a number >= 0), unknown status, sort
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
            raise EmulatorHTTPError(
                400, f"invalid status {value!r}: expected one of {', '.join(STATUSES)}"
            )
        statuses.add(value)

    sort_by = last("sort_by")
    if sort_by is not None and sort_by != "invokedTime":
        raise EmulatorHTTPError(400, f"invalid sort_by {sort_by!r}: expected invokedTime")
    sort_order = last("sort_order")
    if sort_order is not None and sort_order not in ("ASC", "DESC"):
        raise EmulatorHTTPError(400, f"invalid sort_order {sort_order!r}: expected ASC or DESC")

    expired_raw = last("expired")
    expired: bool | None = None
    if expired_raw is not None:
        if expired_raw not in ("true", "false"):
            raise EmulatorHTTPError(400, f"expired must be true or false, got {expired_raw!r}")
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
    """Validate a storage config and drop its write-only secrets. Raises EmulatorHTTPError(400)."""
    if not isinstance(value, dict):
        raise EmulatorHTTPError(400, f"{field} must be an object")
    kind = value.get("type")
    if kind not in STORAGE_TYPES:
        raise EmulatorHTTPError(
            400, f"{field}.type must be one of {', '.join(sorted(STORAGE_TYPES))}, got {kind!r}"
        )
    auth = value.get("auth_method")
    if auth is not None and auth not in ("KEY", "PASSWORD"):
        raise EmulatorHTTPError(400, f"{field}.auth_method must be KEY or PASSWORD, got {auth!r}")
    return {k: v for k, v in value.items() if k not in STORAGE_SECRETS}


def _require_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise EmulatorHTTPError(400, "request body must be a JSON object")
    return body


def _meeting_id(body: Mapping[str, Any]) -> str:
    meeting_id = body.get("meeting_id")
    if not isinstance(meeting_id, str) or not meeting_id.strip():
        raise EmulatorHTTPError(400, "meeting_id is required and must be a non-empty string")
    return meeting_id


def _max_seconds(body: Mapping[str, Any]) -> int:
    value = body.get("max_seconds")
    if value is None:
        return MAX_MAX_SECONDS
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise EmulatorHTTPError(400, f"max_seconds must be an integer, got {value!r}")
    if not MIN_MAX_SECONDS <= value <= MAX_MAX_SECONDS:
        raise EmulatorHTTPError(
            400, f"max_seconds must be between {MIN_MAX_SECONDS} and {MAX_MAX_SECONDS}, got {value}"
        )
    return int(value)


def _enum(obj: Mapping[str, Any], key: str, allowed: Sequence[str], where: str) -> Any:
    value = obj.get(key)
    if value is not None and value not in allowed:
        raise EmulatorHTTPError(
            400, f"{where}{key} must be one of {', '.join(allowed)}, got {value!r}"
        )
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
        raise EmulatorHTTPError(400, f"{where}{key} must be an integer {bound}, got {value!r}")


def _typed(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        expected = {dict: "an object", bool: "a boolean", str: "a string", list: "a list"}
        raise EmulatorHTTPError(400, f"{where}{key} must be {expected.get(kind, kind.__name__)}")
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
    """Validate a composite start body as the schema does. Raises EmulatorHTTPError(400) naming the field.

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
            raise EmulatorHTTPError(
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
    """Validate a track-recording body of either generation. Raises EmulatorHTTPError(400).

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
        raise EmulatorHTTPError(
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
            raise EmulatorHTTPError(400, f"layers.{name} must be an object")
        layer_prefix = _typed(layer, "file_name_prefix", str, where)
        kind = _enum(layer, "media_kind", MEDIA_KINDS, where)
        prefix = prefix or layer_prefix
        clean_layers[name] = {"file_name_prefix": layer_prefix, "media_kind": kind or "audio"}
    user_ids = _typed(data, "user_ids", list, "")
    if user_ids is not None:
        if len(user_ids) > MAX_TRACK_USER_IDS:
            raise EmulatorHTTPError(400, f"user_ids holds at most {MAX_TRACK_USER_IDS} ids")
        if not all(isinstance(u, str) for u in user_ids):
            raise EmulatorHTTPError(400, "user_ids must be a list of strings")
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
        raise EmulatorHTTPError(400, "layers is required and must be a non-empty object")
    bucket_enabled = False
    storage: dict[str, Any] | None = None
    prefix: str | None = None
    clean_layers: dict[str, Any] = {}
    for name, layer in layers.items():
        where = f"layers.{name}"
        if not isinstance(layer, dict):
            raise EmulatorHTTPError(400, f"{where} must be an object")
        layer_prefix = layer.get("file_name_prefix")
        if layer_prefix is not None and not isinstance(layer_prefix, str):
            raise EmulatorHTTPError(400, f"{where}.file_name_prefix must be a string")
        prefix = prefix or layer_prefix
        outputs = layer.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            raise EmulatorHTTPError(400, f"{where}.outputs must be a non-empty list")
        clean_outputs = []
        for i, output in enumerate(outputs):
            kind = output.get("type") if isinstance(output, dict) else None
            if kind not in TRACK_OUTPUT_TYPES:
                raise EmulatorHTTPError(
                    400, f"{where}.outputs[{i}].type must be REALTIMEKIT_BUCKET or STORAGE_CONFIG"
                )
            assert isinstance(output, dict)
            clean: dict[str, Any] = {"type": kind}
            if kind == "REALTIMEKIT_BUCKET":
                bucket_enabled = True
            else:
                if output.get("storage_config") is None:
                    raise EmulatorHTTPError(400, f"{where}.outputs[{i}].storage_config is required")
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


def parse_json_body(raw: bytes) -> Any:
    """Decode a request body as JSON. Raises EmulatorHTTPError(400) when it is not JSON."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EmulatorHTTPError(400, "request body must be valid JSON") from None


def parse_control_body(body: object) -> object:
    """The ``action`` of a PUT body (checked against the status by the store).

    Raises EmulatorHTTPError(400) when the body is not a JSON object.
    """
    return _require_object(body).get("action")
