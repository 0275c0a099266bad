"""Typed webhook events.

Webhook bodies are camelCase (unlike the REST API); the renaming lives in the
one converter (:mod:`realtimekit_async._converter`), so these classes use
Python names. Only verified bodies are ever structured into them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, TypeAlias

import attrs

from ._models import MeetingStatus, RecordingStatus

__all__ = [
    "RECORDING_STATUS_UPDATE",
    "DownloadUrl",
    "GenericEvent",
    "RecordingStatusUpdate",
    "TrackDownload",
    "TrackFile",
    "WebhookEvent",
    "WebhookMeeting",
    "WebhookOrganizer",
    "WebhookRecording",
]

RECORDING_STATUS_UPDATE: Final = "recording.statusUpdate"


@attrs.frozen
class TrackFile:
    """One file of a track recording's layer."""

    download_url: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class TrackDownload:
    """The files of one layer of a track recording, by file name."""

    layer_name: str | None = None
    download_urls: Mapping[str, TrackFile] = attrs.field(factory=dict, repr=False)


#: A composite recording's presigned URL, or one entry per layer of a track recording.
DownloadUrl: TypeAlias = str | tuple[TrackDownload, ...] | None


@attrs.frozen
class WebhookRecording:
    """The recording in a ``recording.statusUpdate`` event.

    Shares attribute names with :class:`~realtimekit_async.Recording` (``id``,
    ``status``, ``download_url``, ``file_size``...) so code can read either.
    ``download_url`` is a presigned credential: do not log it.
    """

    id: str
    status: RecordingStatus
    recording_id: str | None = None
    download_url: DownloadUrl = attrs.field(default=None, repr=False)
    audio_download_url: str | None = attrs.field(default=None, repr=False)
    download_url_expiry: datetime | None = None
    started_time: datetime | None = None
    stopped_time: datetime | None = None
    file_size: int | None = None
    output_file_name: str | None = None
    meeting_id: str | None = None
    recording_duration: int | None = None
    organization_id: str | None = None
    room_uuid: str | None = None

    @property
    def key(self) -> str:
        """The recording's id as the REST API knows it (``recordingId``, else ``id``)."""
        return self.recording_id or self.id


@attrs.frozen
class WebhookOrganizer:
    """Who organized the meeting of a webhook event."""

    id: str | None = None
    name: str | None = None


@attrs.frozen
class WebhookMeeting:
    """The meeting in a webhook event."""

    id: str
    session_id: str | None = None
    title: str | None = None
    room_name: str | None = None
    status: MeetingStatus | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    organized_by: WebhookOrganizer | None = None


@attrs.frozen
class RecordingStatusUpdate:
    """A verified ``recording.statusUpdate`` delivery.

    ``delivery_id`` (the ``rtk-uuid`` header) is the same on every redelivery
    of one event; ``webhook_id`` names the webhook subscription. Both come from
    the headers, not the body, and are ``None`` only if the sender left them out.
    """

    event: str
    recording: WebhookRecording
    meeting: WebhookMeeting | None = None
    delivery_id: str | None = None
    webhook_id: str | None = None


@attrs.frozen
class GenericEvent:
    """A verified delivery of any other event type; ``payload`` is the decoded body as sent."""

    event: str
    payload: Mapping[str, Any] = attrs.field(repr=False)
    delivery_id: str | None = None
    webhook_id: str | None = None


WebhookEvent: TypeAlias = RecordingStatusUpdate | GenericEvent
