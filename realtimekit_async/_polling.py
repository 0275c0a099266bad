"""Waiting by polling: the pause and retry decisions, and the one polling loop.

The decisions are pure functions (how long to pause between polls, which
errors are worth another poll; what a status means is in ``_lifecycle``), so
they are tested without a network. :func:`poll` is the only I/O here;
``Recordings.wait_for`` and :class:`RecordingWaiter` (``_webhook_waiter``)
both use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, TypeVar

from ._exceptions import (
    APIConnectionError,
    APIError,
    InternalServerError,
    RateLimitError,
    ValidationError,
)
from ._lifecycle import check_outcome, wait_timeout_message
from ._models import ListRecordingsParams, Recording, RecordingStatus
from ._validation import check_seconds

__all__ = [
    "is_transient",
    "poll",
    "poll_delay",
    "wait_for_recording",
    "wanted_statuses",
]

logger: Final = logging.getLogger("realtimekit_async")

_R = TypeVar("_R")

DEFAULT_BACKOFF: Final = 1.5


def wanted_statuses(
    status: RecordingStatus | str | Iterable[RecordingStatus | str],
) -> frozenset[RecordingStatus]:
    """Validate one status or several; raises :class:`ValidationError` for unknown or none."""
    # The list filter's own validation, which also admits statuses newer than this
    # SDK; a wait must know what each status means, so here only known ones pass.
    parsed = ListRecordingsParams(status=status).status
    if not parsed:
        raise ValidationError("status", "needs at least one status")
    known = RecordingStatus._value2member_map_
    for s in parsed:
        if s not in known:
            allowed = ", ".join(repr(m.value) for m in RecordingStatus)
            raise ValidationError("status", f"{s!r} is not one of {allowed}")
    return frozenset(RecordingStatus(s) for s in parsed)


def poll_delay(
    attempt: int, poll_interval: float, max_poll_interval: float, factor: float = DEFAULT_BACKOFF
) -> float:
    """Pause after poll number ``attempt`` (0-based): grows from ``poll_interval`` to the cap."""
    cap = max(poll_interval, max_poll_interval)
    # Stop multiplying once past the cap so a long wait cannot overflow a float.
    if attempt > 64:
        return cap
    return min(poll_interval * factor**attempt, cap)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed poll is worth repeating: no answer, 429, or a 5xx.

    The client has already retried these; a wait keeps going because its own
    deadline, not one request, decides when to give up.
    """
    return isinstance(exc, APIConnectionError | RateLimitError | InternalServerError)


async def poll(
    fetch: Callable[[], Awaitable[_R]],
    done: Callable[[_R], bool],
    *,
    poll_interval: float,
    max_poll_interval: float,
) -> _R:
    """Call ``fetch`` until ``done(result)`` is true, pausing longer each time; return the result.

    Transient API errors (see :func:`is_transient`) mean "poll again"; any
    other error, and anything ``done`` raises, ends the loop. There is no
    deadline here: callers wrap it in ``asyncio.timeout``.
    """
    attempt = 0
    while True:
        try:
            result = await fetch()
        except APIError as exc:
            if not is_transient(exc):
                raise
            logger.info("poll failed, will poll again: %s", exc)
        else:
            if done(result):
                return result
        await asyncio.sleep(poll_delay(attempt, poll_interval, max_poll_interval))
        attempt += 1


async def wait_for_recording(
    fetch: Callable[[], Awaitable[Recording]],
    recording_id: str,
    status: RecordingStatus | str | Iterable[RecordingStatus | str],
    *,
    timeout: float | None,  # noqa: ASYNC109  # the public wait_for signature
    poll_interval: float,
    max_poll_interval: float,
) -> Recording:
    """Poll ``fetch`` until the recording reaches a wanted status; the body of ``wait_for``.

    Every argument is checked before the first request. Raises
    :class:`ValidationError`, :class:`RecordingFailedError`, the builtin
    :class:`TimeoutError`, or a non-transient :class:`APIError` from ``fetch``.
    """
    wanted = wanted_statuses(status)
    limit = None if timeout is None else check_seconds("timeout", timeout)
    interval = check_seconds("poll_interval", poll_interval)
    cap = check_seconds("max_poll_interval", max_poll_interval)
    seen: list[RecordingStatus] = []

    def done(recording: Recording) -> bool:
        seen.append(recording.status)
        return check_outcome(recording, recording.status, wanted)

    try:
        async with asyncio.timeout(limit):
            return await poll(fetch, done, poll_interval=interval, max_poll_interval=cap)
    except TimeoutError:
        # Only the deadline raises the builtin TimeoutError here (request
        # timeouts are APITimeoutError); say what was waited for.
        assert limit is not None  # without a limit there is no deadline to hit
        last = seen[-1] if seen else None
        raise TimeoutError(wait_timeout_message(recording_id, wanted, limit, last)) from None
