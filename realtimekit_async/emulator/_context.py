"""Shared mutable context of one running emulator, handed to both web apps."""

from __future__ import annotations

import collections
import contextvars
import itertools
from collections.abc import Callable
from typing import Literal

import attrs
from aiohttp import web
from multidict import CIMultiDict

from ._clock import EmulatedClock
from ._faults import FaultSchedule, RateLimiter
from ._signing import UrlSigner
from ._state import RecordingStore

__all__ = [
    "CTX_KEY",
    "EmulatorContext",
    "EmulatorStats",
    "StorageRequest",
    "TRACK_RESPONSES",
    "TRUNCATE",
    "TrackResponse",
]

#: How a track start answers: the schema's ``data.recording``, the seed's flat
#: recording in ``data``, or no ``data`` at all.
TrackResponse = Literal["current", "legacy", "none"]
TRACK_RESPONSES: tuple[TrackResponse, ...] = ("current", "legacy", "none")

# Set by the fault middleware for the handler it wraps (a ContextVar rather than a
# request key so this works on aiohttp versions without web.RequestKey).
TRUNCATE: contextvars.ContextVar[bool] = contextvars.ContextVar("rtk_truncate", default=False)


@attrs.define
class EmulatorStats:
    """Counters for assertions: requests per route, statuses, faults, rate limiting.

    ``requests`` keys are route names (``list_recordings``, ``start_recording``,
    ``start_track_recording``, ``get_recording``, ``control_recording``,
    ``get_active_recording``, ``webhook_public_key``, ``download``, ``unmatched``).
    ``starts_by_meeting`` counts accepted starts (composite and track) per meeting,
    including starts whose response a ``truncate`` fault destroyed.
    """

    requests: collections.Counter[str] = attrs.field(factory=collections.Counter)
    statuses: collections.Counter[int] = attrs.field(factory=collections.Counter)
    faults: collections.Counter[str] = attrs.field(factory=collections.Counter)
    rate_limited: int = 0
    starts_by_meeting: collections.Counter[str] = attrs.field(factory=collections.Counter)

    def duplicate_starts(self) -> dict[str, int]:
        """Meetings that saw more than one accepted start, with their counts."""
        return {m: n for m, n in self.starts_by_meeting.items() if n > 1}


@attrs.frozen
class StorageRequest:
    """One request the storage (download) site received, as seen on the wire."""

    method: str
    path: str
    query_string: str
    headers: CIMultiDict[str]


@attrs.define
class EmulatorContext:
    """What the request handlers need; owned by :class:`Emulator`."""

    store: RecordingStore
    clock: EmulatedClock
    signer: UrlSigner
    token: str
    account_id: str
    app_id: str
    public_key_pem: Callable[[], str]
    stats: EmulatorStats = attrs.field(factory=EmulatorStats)
    faults: FaultSchedule | None = None
    rate_limiter: RateLimiter | None = None
    rate_limit_headers: str = "ietf"
    latency: float = 0.0
    extra_fields: bool = False
    start_status: int = 200
    track_response: TrackResponse = "current"
    public_key_literal_newlines: bool = False
    storage_requests: list[StorageRequest] = attrs.field(factory=list)
    ray_counter: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    ray_prefix: int = 0

    def next_ray(self) -> str:
        """A unique ``cf-ray`` value: 16 hex digits and a pseudo colo code."""
        n = next(self.ray_counter)
        return f"{(self.ray_prefix + n) & 0xFFFFFFFFFFFFFFFF:016x}-EMU"


CTX_KEY = web.AppKey("rtk_emulator_ctx", EmulatorContext)
