"""The pure parts of the transport seam: classify(), answers and per-call options."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiointercept import CallbackResult
from multidict import CIMultiDict, CIMultiDictProxy

from realtimekit_async import (
    APIConnectionError,
    APITimeoutError,
    RetryPolicy,
    ValidationError,
)
from realtimekit_async._call import merge_body, merge_query, resolve_call
from realtimekit_async._config import resolve_options
from realtimekit_async._sansio import Failure
from realtimekit_async._transport import TRANSPORT_ERRORS, Answer, classify
from realtimekit_async.webhooks import WebhookVerifier

from ._webhook_support import signed_headers

OPTIONS = resolve_options(
    api_token="t",
    account_id="a",
    app_id="b",
    base_url=None,
    timeout=60,
    max_retries=RetryPolicy(max_retries=3, initial_delay=0.25),
    env={},
)


@pytest.mark.parametrize(
    ("exc", "failure", "cls", "message"),
    [
        (
            aiohttp.ConnectionTimeoutError(),
            Failure.CONNECT,
            APITimeoutError,
            "timed out connecting",
        ),
        (aiohttp.SocketTimeoutError(), Failure.AFTER_SEND, APITimeoutError, "timed out"),
        (TimeoutError(), Failure.AFTER_SEND, APITimeoutError, "timed out"),
        (
            aiohttp.ServerDisconnectedError(),
            Failure.AFTER_SEND,
            APIConnectionError,
            "connection failed: ServerDisconnectedError",
        ),
        (
            aiohttp.ClientPayloadError("https://b.s3/x?X-Amz-Signature=SECRET cut short"),
            Failure.AFTER_SEND,
            APIConnectionError,
            "connection failed: ClientPayloadError",
        ),
    ],
)
def test_classify_maps_aiohttp_failures(
    exc: BaseException, failure: Failure, cls: type, message: str
) -> None:
    assert isinstance(exc, TRANSPORT_ERRORS)
    got = classify(exc, method="GET", path="/p", shown="https://b.s3/x?…")
    assert got.failure is failure
    assert type(got.error) is cls
    assert str(got.error) == f"GET https://b.s3/x?…: {message}"
    assert (got.error.method, got.error.path) == ("GET", "/p")
    assert "SECRET" not in str(got.error)
    assert got.error.__cause__ is None
    assert got.error.__context__ is None


def test_classify_shows_the_path_by_default() -> None:
    got = classify(TimeoutError(), method="PUT", path="/a/b")
    assert str(got.error) == "PUT /a/b: timed out"
    assert got.kind == "timed out"


def test_answer_request_id_is_the_cf_ray_header() -> None:
    headers = CIMultiDictProxy(CIMultiDict({"CF-Ray": "8f1e-LHR"}))
    assert Answer(status=200, headers=headers, body=b"{}").request_id == "8f1e-LHR"
    assert Answer(status=204, headers={}, body=b"").request_id is None
    assert Answer(status=204, headers={}, body=b"").ok
    assert not Answer(status=301, headers={}, body=b"").ok


def test_call_options_default_to_the_clients() -> None:
    call = resolve_call(OPTIONS, {})
    assert (call.timeout, call.retry) == (OPTIONS.timeout, OPTIONS.retry)
    assert (dict(call.extra_headers), call.extra_query, call.extra_body) == ({}, (), None)


def test_a_retry_count_keeps_the_backoff_and_a_policy_replaces_it() -> None:
    assert resolve_call(OPTIONS, {"max_retries": 0}).retry == RetryPolicy(
        max_retries=0, initial_delay=0.25
    )
    policy = RetryPolicy(max_retries=1)
    assert resolve_call(OPTIONS, {"max_retries": policy}).retry is policy
    timeout = resolve_call(OPTIONS, {"timeout": 5}).timeout
    assert (timeout.total, timeout.sock_connect) == (5, 5)


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"extra_headers": {"Authorization": "Bearer x"}}, "extra_headers", "set by the client"),
        ({"extra_headers": {"authorization": "x"}}, "extra_headers", "set by the client"),
        ({"extra_headers": {"Host": "evil"}}, "extra_headers", "set by the client"),
        ({"extra_headers": {"X-A": "1\r\nX-B: 2"}}, "extra_headers", "without line breaks"),
        ({"extra_headers": {"X A": "1"}}, "extra_headers", "invalid header name"),
        ({"extra_headers": {"X-A": 1}}, "extra_headers", "without line breaks"),
        ({"extra_headers": [("X-A", "1")]}, "extra_headers", "mapping"),
        ({"extra_query": {"a": 1}}, "extra_query", "str keys and values"),
        ({"extra_query": [("a",)]}, "extra_query", "str keys and values"),
        ({"extra_body": ["x"]}, "extra_body", "mapping"),
        ({"extra_body": {"x": object()}}, "extra_body", "cannot be sent as JSON"),
        ({"timeout": -1}, "timeout", "seconds"),
        ({"max_retries": True}, "max_retries", "integer"),
        ({"retries": 3}, "retries", "not a per-call option"),
    ],
)
def test_bad_call_options_are_refused(options: Any, field: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        resolve_call(OPTIONS, options)
    assert info.value.field == field
    assert "Bearer x" not in str(info.value)


def test_extra_query_replaces_keys_of_the_same_name_and_comes_last() -> None:
    query = [("status", "A"), ("status", "B"), ("page_no", "1"), ("per_page", "100")]
    assert merge_query(query, [("per_page", "5"), ("new", "x")]) == (
        ("status", "A"),
        ("status", "B"),
        ("page_no", "1"),
        ("per_page", "5"),
        ("new", "x"),
    )
    assert merge_query(query, ()) == tuple(query)


def test_extra_body_replaces_top_level_keys() -> None:
    body = {"meeting_id": "m", "audio_config": {"codec": "AAC"}}
    assert merge_body(body, {"audio_config": None, "beta": True}, method="POST") == {
        "meeting_id": "m",
        "audio_config": None,
        "beta": True,
    }
    assert merge_body(body, None, method="POST") is body
    assert merge_body(None, None, method="GET") is None
    with pytest.raises(ValidationError, match="this GET call sends no body"):
        merge_body(None, {"x": 1}, method="GET")


# -- the webhook key fetch goes through classify() -------------------------------------


async def test_a_refused_key_fetch_is_classified_with_the_key_url_redacted(
    unused_tcp_port: int,
) -> None:
    body = b'{"event": "x"}'
    url = f"http://127.0.0.1:{unused_tcp_port}/keys.json?token=SECRET"
    async with WebhookVerifier(key_url=url) as verifier:
        with pytest.raises(APIConnectionError, match="cannot connect") as info:
            await verifier.verify(body, signed_headers(body))
    assert str(info.value).startswith(f"GET http://127.0.0.1:{unused_tcp_port}/keys.json?…: ")
    assert "SECRET" not in str(info.value)
    assert info.value.path == "/keys.json"
    assert info.value.__context__ is None


async def test_a_hanging_key_server_is_a_timeout(api: Any) -> None:
    async def hang(_url: Any, **_kwargs: Any) -> CallbackResult:
        await asyncio.sleep(1)
        return CallbackResult(payload={})

    url = "https://keys.example.com/keys.json"
    api.get(url, callback=hang)
    body = b'{"event": "x"}'
    async with WebhookVerifier(key_url=url, timeout=0.05) as verifier:
        with pytest.raises(
            APITimeoutError, match=r"^GET https://keys\.example\.com/keys\.json: timed out$"
        ):
            await verifier.verify(body, signed_headers(body))
