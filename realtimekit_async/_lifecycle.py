"""The recording lifecycle, sans I/O: how statuses are ordered and what they mean.

One copy of the rules that the waits (``_polling``, ``_webhook_waiter``) and
the pause/resume/stop actions (``Recordings``) apply: which status may replace
which (deliveries are unordered), whether a status ends a wait, which statuses
show an action took effect, and what a timed-out wait says.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

from ._exceptions import RecordingFailedError
from ._models import Recording, RecordingAction, RecordingStatus
from ._webhook_models import WebhookRecording

__all__ = [
    "ACTION_OUTCOMES",
    "TERMINAL_STATUSES",
    "Outcome",
    "action_applied",
    "check_outcome",
    "decide",
    "status_rank",
    "supersedes",
    "wait_timeout_message",
]

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
    recording: Recording | WebhookRecording,
    status: RecordingStatus,
    wanted: frozenset[RecordingStatus],
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


def wait_timeout_message(
    recording_id: str, wanted: Iterable[RecordingStatus], limit: float, last: object
) -> str:
    """What a wait's builtin ``TimeoutError`` says: what it waited for, how long, what it saw."""
    return (
        f"recording {recording_id} did not become {', '.join(sorted(wanted))} "
        f"within {limit:g}s (last status: {last or 'unknown'})"
    )


#: The statuses that show a pause/resume/stop action has taken effect: a stop shows
#: as any stage from UPLOADING on (ERRORED included), read off the lifecycle order.
ACTION_OUTCOMES: Final[Mapping[RecordingAction, frozenset[RecordingStatus]]] = {
    RecordingAction.STOP: frozenset(
        s for s, rank in _RANK.items() if rank >= _RANK[RecordingStatus.UPLOADING]
    ),
    RecordingAction.PAUSE: frozenset({RecordingStatus.PAUSED}),
    RecordingAction.RESUME: frozenset({RecordingStatus.RECORDING}),
}


def action_applied(action: RecordingAction | str, status: RecordingStatus | str) -> bool:
    """Whether a recording in ``status`` shows that ``action`` has been carried out."""
    # A StrEnum member hashes like its string, so a plain "stop" finds its entry;
    # an action newer than this SDK has no known outcome.
    return status in ACTION_OUTCOMES.get(action, frozenset())  # type: ignore[arg-type]
