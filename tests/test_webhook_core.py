"""The sans-I/O webhook decisions, without a network or an event loop."""

from __future__ import annotations

import hashlib

import pytest

from realtimekit_async import InternalServerError, WebhookVerificationError
from realtimekit_async._webhook_core import (
    ACCEPTED,
    BAD_SIGNATURE,
    BUSY,
    CANNOT_VERIFY,
    MISSING_SIGNATURE,
    NOT_AN_EVENT,
    NOT_JSON,
    OK,
    REDELIVER,
    TOO_LARGE,
    BodyLimit,
    RetryDelivery,
    WebhookAnswer,
    WebhookPayloadError,
    callback_answer,
    delivery_keys,
    rejection,
    screen,
)

SIGNED = {"rtk-signature": "c2ln", "Content-Type": "application/json"}


def check(headers: dict[str, str], pending: int = 0) -> WebhookAnswer | None:
    return screen(headers, pending=pending, max_pending=3, max_body_size=100)


def test_a_plausible_delivery_is_read() -> None:
    assert check(SIGNED) is None
    assert check({"rtk-signature": "c2ln"}) is None  # no Content-Type at all
    assert (
        check({"DYTE-SIGNATURE": "c2ln", "content-type": "Application/JSON; charset=utf-8"}) is None
    )
    assert check(SIGNED | {"Content-Type": "application/vnd.rtk+json"}) is None
    assert check(SIGNED | {"Content-Length": "100"}) is None
    # Not a length: left to the limit that holds while the body streams.
    assert check(SIGNED | {"Content-Length": "\u00b2"}) is None
    assert check(SIGNED | {"Content-Length": "-1"}) is None


@pytest.mark.parametrize(
    ("headers", "pending", "answer"),
    [
        (SIGNED, 3, BUSY),  # checked first: nothing is read while callbacks pile up
        ({"Content-Type": "application/json"}, 0, MISSING_SIGNATURE),
        ({"rtk-signature": "", "Content-Type": "application/json"}, 0, MISSING_SIGNATURE),
        (SIGNED | {"Content-Type": "text/plain"}, 0, NOT_JSON),
        (SIGNED | {"content-length": "101"}, 0, TOO_LARGE),
    ],
)
def test_what_is_answered_before_reading(
    headers: dict[str, str], pending: int, answer: WebhookAnswer
) -> None:
    assert check(headers, pending) == answer


def test_the_body_limit_holds_while_streaming() -> None:
    limit = BodyLimit(10)
    assert limit.feed(b"12345")
    assert limit.feed(b"")
    assert limit.feed(b"67890")
    assert limit.body == b"1234567890"
    assert not limit.feed(b"!")
    assert limit.body == b""  # nothing of an oversized body is kept


def test_verification_failures_map_to_answers() -> None:
    assert rejection(WebhookVerificationError("bad")) == BAD_SIGNATURE
    assert rejection(WebhookPayloadError("not json")) == NOT_AN_EVENT
    assert rejection(InternalServerError("key URL down", status=500)) == CANNOT_VERIFY
    assert CANNOT_VERIFY.status == 503  # our problem: the sender retries


def test_callback_outcomes_map_to_answers() -> None:
    assert callback_answer(done=True, error=None) == OK
    assert callback_answer(done=False, error=None) == ACCEPTED
    assert callback_answer(done=True, error=RetryDelivery()) == REDELIVER
    assert callback_answer(done=True, error=RuntimeError("bug")) == OK  # would fail again


def test_the_body_digest_comes_first_and_prefixes_keep_keys_apart() -> None:
    digest = "body:" + hashlib.sha256(b"{}").hexdigest()
    assert delivery_keys("d1", b"{}") == (digest, "uuid:d1")
    assert delivery_keys(None, b"{}") == (digest,)
    # A uuid spelled like a digest still lands in the uuid namespace.
    assert delivery_keys(digest, b"[]")[1] == "uuid:" + digest
