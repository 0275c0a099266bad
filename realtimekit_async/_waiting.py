"""Waiting for a recording to reach a status: the decisions, and one polling loop.

The decisions are pure functions (how statuses are ordered, whether a status
ends a wait, how long to pause between polls, which errors are worth another
poll), so they are tested without a network. :func:`poll` is the only I/O
here; ``Recordings.wait_for`` and :class:`RecordingWaiter` both use it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, TypeVar

from ._exceptions import (
    APIConnectionError,
    APIError,
    InternalServerError,
    RateLimitError,
    RecordingFailedError,
    ValidationError,
)
from ._models import ListRecordingsParams, Recording, RecordingStatus
from ._validation import check_seconds

__all__ = [
    "TERMINAL_STATUSES",
    "Outcome",
    "check_outcome",
    "decide",
    "is_transient",
    "poll",
    "poll_delay",
    "status_rank",
    "supersedes",
    "wait_for_recording",
    "wanted_statuses",
]

logger: Final = logging.getLogger("realtimekit_async")

_R = TypeVar("_R")

TERMINAL_STATUSES: Final = frozenset({RecordingStatus.UPLOADED, RecordingStatus.ERRORED})

# The lifecycle as a partial order. RECORDING and PAUSED share a rank because
# pause/resume moves between them both ways; UPLOADED and ERRORED are both ends.
_RANK: Final = {
    RecordingStatus.INVOKED: 0,
    RecordingStatus.RECORDING: 1,
    RecordingStatus.PAUSED: 1,
    RecordingStatus.UPLOADING: 2,
    RecordingStatus.UPLOADED: 3,
    RecordingStatus.ERRORED: 3,
}

DEFAULT_BACKOFF: Final = 1.5


def status_rank(status: RecordingStatus) -> int | None:
    """Position of ``status`` in the lifecycle, or ``None`` for a status the SDK does not know."""
    return _RANK.get(status)


def supersedes(current: RecordingStatus | None, incoming: RecordingStatus) -> bool:
    """Whether news of ``incoming`` should replace what is known (``current``).

    Deliveries are unordered, so a status never moves backwards: nothing
    replaces a terminal status, and an earlier stage (a late RECORDING after
    UPLOADING) is ignored. A status the SDK does not know cannot be ordered; it
    is taken unless the current status is terminal.
    """
    if current is None:
        return True
    if current in TERMINAL_STATUSES or incoming == current:
        return False
    old, new = status_rank(current), status_rank(incoming)
    if old is None or new is None:
        return True
    return new >= old


class Outcome(enum.Enum):
    """What a status means for a wait."""

    REACHED = "reached"  #: a wanted status
    FAILED = "failed"  #: ERRORED, and ERRORED was not wanted
    UNREACHABLE = "unreachable"  #: past every wanted status; it can never come back
    WAIT = "wait"  #: keep waiting


def decide(status: RecordingStatus, wanted: frozenset[RecordingStatus]) -> Outcome:
    """Whether ``status`` ends a wait for any of ``wanted``, and how."""
    if status in wanted:
        return Outcome.REACHED
    if status == RecordingStatus.ERRORED:
        return Outcome.FAILED
    rank = status_rank(status)
    ranks = [status_rank(s) for s in wanted]
    if status in TERMINAL_STATUSES or (
        rank is not None and None not in ranks and all(rank > r for r in ranks if r is not None)
    ):
        return Outcome.UNREACHABLE
    return Outcome.WAIT


def check_outcome(
    recording: object, status: RecordingStatus, wanted: frozenset[RecordingStatus]
) -> bool:
    """``True`` when ``status`` is wanted, ``False`` to keep waiting.

    Raises :class:`RecordingFailedError` (carrying ``recording``) when the
    recording ended ERRORED unwanted, or moved past every wanted status.
    """
    outcome = decide(status, wanted)
    if outcome is Outcome.WAIT:
        return False
    if outcome is Outcome.REACHED:
        return True
    names = ", ".join(sorted(wanted))
    if outcome is Outcome.FAILED:
        raise RecordingFailedError(f"recording ended ERRORED (waited for {names})", recording)
    raise RecordingFailedError(
        f"recording is {status}, so it can no longer become {names}", recording
    )


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
        last = seen[-1] if seen else "unknown"
        raise TimeoutError(
            f"recording {recording_id} did not become {', '.join(sorted(wanted))} "
            f"within {limit:g}s (last status: {last})"
        ) from None
