"""The shared argument checks (``_validation``), and that every entry point uses them.

A ``bool`` is an ``int`` to Python but never a count, a duration or a rate to a
user: each numeric argument refuses ``True`` before anything is sent.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from realtimekit_async import RateLimit, RealtimeKit, RetryPolicy, ValidationError
from realtimekit_async._validation import (
    attribute,
    check_id,
    check_int,
    check_non_empty,
    check_non_negative,
    check_seconds,
)
from realtimekit_async.export import export_recordings
from realtimekit_async.webhooks import WebhookVerifier, webhook_handler

NOWHERE = "http://127.0.0.1:9/client/v4"


@pytest.mark.parametrize("bad", ["", "   ", ".", "..", None, 5])
def test_check_id_rejects(bad: object) -> None:
    with pytest.raises(ValidationError, match="recording_id"):
        check_id("recording_id", bad)


def test_checks_return_what_they_accept() -> None:
    assert check_id("id", "rec-1") == "rec-1"
    assert check_int("n", 3, 1, 5) == 3
    assert check_seconds("t", 2) == 2.0
    assert isinstance(check_seconds("t", 2), float)
    assert check_non_negative("t", 0) == 0.0
    assert check_non_empty("s", " x ") == " x "


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (lambda v: check_int("n", v, 0), True, "n: must be an integer >= 0, got True"),
        (lambda v: check_int("n", v, 1, 3), 4, "n: must be an integer between 1 and 3, got 4"),
        (lambda v: check_int("n", v, 0), 1.0, "n: must be an integer >= 0, got 1.0"),
        (
            lambda v: check_seconds("t", v),
            True,
            "t: must be a positive number of seconds, got True",
        ),
        (lambda v: check_seconds("t", v), 0, "t: must be a positive number of seconds, got 0"),
        (
            lambda v: check_seconds("t", v),
            math.inf,
            "t: must be a positive number of seconds, got inf",
        ),
        (
            lambda v: check_non_negative("t", v),
            True,
            "t: must be a number of seconds >= 0, got True",
        ),
        (lambda v: check_non_negative("t", v), -1, "t: must be a number of seconds >= 0, got -1"),
        (lambda v: check_non_negative("t", v), "1", "t: must be a number of seconds >= 0, got '1'"),
        (
            lambda v: check_non_negative("t", v),
            math.nan,
            "t: must be a number of seconds >= 0, got nan",
        ),
        (lambda v: check_non_empty("s", v), " ", "s: must be a non-empty string"),
        (lambda v: check_non_empty("s", v), b"x", "s: must be a non-empty string"),
    ],
)
def test_checks_refuse(check: Any, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check(value)
    assert str(caught.value) == message


def test_attribute_validator_names_the_field_and_skips_none_when_optional() -> None:
    @attrs.frozen
    class Thing:
        name: str | None = attrs.field(
            default=None, validator=attribute(check_non_empty, optional=True)
        )

    assert Thing().name is None
    with pytest.raises(ValidationError, match=r"^name: must be a non-empty string$"):
        Thing(" ")


# -- every entry point refuses a bool for a number -----------------------------------------


async def test_export_refuses_true_as_margin_or_rate() -> None:
    """``min_rate=True`` and ``url_expiry_margin=True`` were accepted as 1 (``True >= 0``)."""
    async with RealtimeKit(api_token="t", account_id="a", app_id="b", base_url=NOWHERE) as client:
        with pytest.raises(ValidationError) as margin:
            await export_recordings(client, "unused", url_expiry_margin=True)
        with pytest.raises(ValidationError) as rate:
            await export_recordings(client, "unused", min_rate=True)
    assert str(margin.value) == "url_expiry_margin: must be a number of seconds >= 0, got True"
    assert str(rate.value) == "min_rate: must be a number of bytes per second >= 0, got True"


async def test_export_refuses_a_string_margin_with_a_validation_error() -> None:
    """A string margin used to raise a raw ``TypeError`` from the comparison."""
    async with RealtimeKit(api_token="t", account_id="a", app_id="b", base_url=NOWHERE) as client:
        with pytest.raises(ValidationError, match=r"^url_expiry_margin: "):
            await export_recordings(client, "unused", url_expiry_margin="5")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(max_retries=True),
        lambda: RetryPolicy(initial_delay=True),
        lambda: RateLimit(True, 1.0),
        lambda: RateLimit(1, True),
        lambda: WebhookVerifier(refetch_cooldown=True),
        lambda: WebhookVerifier(timeout=True),
        lambda: webhook_handler(WebhookVerifier(), respond_within=True),
        lambda: webhook_handler(WebhookVerifier(), max_pending=True),
    ],
)
def test_settings_refuse_true_as_a_number(make: Any) -> None:
    with pytest.raises(ValidationError, match=r"got True$"):
        make()
