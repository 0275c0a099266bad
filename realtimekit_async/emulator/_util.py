"""Small helpers shared by the emulator modules: time formatting, ids, errors."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

__all__ = [
    "EmulatorHTTPError",
    "caller_id",
    "format_ms",
    "iso_to_ms",
    "ms_to_datetime",
    "new_uuid",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


class EmulatorHTTPError(Exception):
    """A request the emulated API rejects; rendered in the RealtimeKit error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def ms_to_datetime(ms: int) -> datetime:
    """Convert epoch milliseconds to an aware UTC datetime (exact, no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ms)


def format_ms(ms: int | None) -> str | None:
    """Render epoch milliseconds as ISO 8601 UTC with milliseconds and ``Z``; None stays None."""
    if ms is None:
        return None
    dt = ms_to_datetime(ms)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def iso_to_ms(text: str) -> int:
    """Parse an ISO 8601 timestamp (naive means UTC) to epoch milliseconds.

    Raises ValueError when the text is not ISO 8601.
    """
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_MS


def datetime_to_ms(dt: datetime) -> int:
    """Convert a datetime (naive means UTC) to epoch milliseconds."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_MS


def new_uuid(rng: random.Random) -> str:
    """Draw a version-4 shaped UUID string from a seeded RNG, so runs are reproducible."""
    # Same bits as uuid.UUID(int=..., version=4), formatted without the UUID object
    # because seeding draws hundreds of thousands of these.
    n = (rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def caller_id(app_id: str) -> str:
    """The ``user_Id`` of the app's caller objects: the app id when it is a UUID (the
    documented format), else a UUID derived from it, so any app id gives valid answers."""
    try:
        return str(uuid.UUID(app_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"realtimekit-app:{app_id}"))
