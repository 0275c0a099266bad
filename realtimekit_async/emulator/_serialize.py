"""JSON views of recordings and meetings, as the Recordings API returns them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from ._state import Meeting, Recording
from ._util import format_ms

__all__ = ["UrlFor", "View", "download_urls", "meeting_json", "recording_json"]

View = Literal["list", "detail", "active"]
UrlFor = Callable[[Recording, str], str]


def download_urls(rec: Recording, url_for: UrlFor) -> tuple[str | None, str | None]:
    """(video URL, audio URL) of an uploaded recording, None where there is no file."""
    if rec.status != "UPLOADED" or rec.expiry_ms is None:
        return None, None
    video = url_for(rec, "video")
    return video, (url_for(rec, "audio") if rec.has_audio else None)


def meeting_json(meeting: Meeting, *, extra_fields: bool = False) -> dict[str, Any]:
    """The ``meeting`` object embedded in list items."""
    data: dict[str, Any] = {
        "id": meeting.id,
        "created_at": format_ms(meeting.created_ms),
        "updated_at": format_ms(meeting.updated_ms),
        "live_stream_on_start": meeting.live_stream_on_start,
        "persist_chat": meeting.persist_chat,
        "record_on_start": meeting.record_on_start,
        "session_keep_alive_time_in_secs": meeting.session_keep_alive_time_in_secs,
        "status": meeting.status,
        "summarize_on_end": meeting.summarize_on_end,
        "title": meeting.title,
    }
    if extra_fields:
        data["recording_config"] = {"max_seconds": 86400, "file_name_prefix": "recording"}
        data["transcribe_on_end"] = False
    return data


def recording_json(
    rec: Recording,
    meeting: Meeting,
    *,
    view: View,
    url_for: UrlFor,
    extra_fields: bool = False,
) -> dict[str, Any]:
    """A recording as the API renders it; nullable keys are present with ``null``.

    ``list`` adds ``meeting`` (and ``storage_config`` when set); ``detail`` adds
    ``start_reason`` and ``stop_reason`` (objects, left out while unset: the
    schema has no null for them) and ``storage_config`` (null when unset);
    ``active`` is the bare recording, as the reference shows for that endpoint.
    """
    video, audio = download_urls(rec, url_for)
    data: dict[str, Any] = {
        "id": rec.id,
        "audio_download_url": audio,
        "download_url": video,
        "download_url_expiry": format_ms(rec.expiry_ms) if video else None,
        "file_size": rec.file_size,
        "invoked_time": format_ms(rec.invoked_ms),
        "output_file_name": rec.output_file_name,
        "session_id": rec.session_id,
        "started_time": format_ms(rec.started_ms),
        "status": rec.status,
        "stopped_time": format_ms(rec.stopped_ms),
        "recording_duration": rec.duration_s,
    }
    if view == "list":
        data["meeting"] = meeting_json(meeting, extra_fields=extra_fields)
        if rec.storage_config is not None:
            data["storage_config"] = dict(rec.storage_config)
    elif view == "detail":
        if rec.start_reason is not None:
            data["start_reason"] = rec.start_reason
        if rec.stop_reason is not None:
            data["stop_reason"] = rec.stop_reason
        data["storage_config"] = dict(rec.storage_config) if rec.storage_config else None
    if extra_fields:
        data["recording_config"] = dict(rec.config)
        data["user_ids"] = list(rec.user_ids)
        if rec.layers is not None:
            data["layers"] = rec.layers
    return data
