"""The recording lifecycle's rules (``_lifecycle``), without a network.

Ordering and wait outcomes are exercised further in test_waiting.py (through
both waits); here the single copies the waits and the actions share.
"""

from __future__ import annotations

import pytest

from realtimekit_async import RecordingAction, RecordingStatus
from realtimekit_async._lifecycle import ACTION_OUTCOMES, action_applied, wait_timeout_message

S = RecordingStatus


@pytest.mark.parametrize(
    ("action", "status", "expected"),
    [
        ("stop", "UPLOADING", True),
        ("stop", "UPLOADED", True),
        ("stop", "ERRORED", True),
        ("stop", "RECORDING", False),
        ("pause", "PAUSED", True),
        ("pause", "RECORDING", False),
        ("resume", "RECORDING", True),
        ("resume", "PAUSED", False),
    ],
)
def test_action_applied(action: str, status: str, expected: bool) -> None:
    assert action_applied(action, status) is expected


def test_stop_shows_as_every_stage_from_uploading_on() -> None:
    """Derived from the lifecycle order; pinned so a new rank cannot widen it unnoticed."""
    assert ACTION_OUTCOMES[RecordingAction.STOP] == {S.UPLOADING, S.UPLOADED, S.ERRORED}


def test_an_action_newer_than_the_sdk_has_no_known_outcome() -> None:
    assert action_applied("restart", "RECORDING") is False


def test_wait_timeout_message() -> None:
    wanted = [S.UPLOADED, S.ERRORED]
    assert wait_timeout_message("rec-1", wanted, 2.5, S.UPLOADING) == (
        "recording rec-1 did not become ERRORED, UPLOADED within 2.5s (last status: UPLOADING)"
    )
    assert wait_timeout_message("rec-1", [S.UPLOADED], 60.0, None) == (
        "recording rec-1 did not become UPLOADED within 60s (last status: unknown)"
    )
