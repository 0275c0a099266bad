"""The pure core: URLs, queries, error mapping, retry decisions, paging arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from realtimekit_async import (
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    ListRecordingsParams,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    UnprocessableEntityError,
)
from realtimekit_async._sansio import (
    Failure,
    list_query,
    page_count,
    possibly_processed,
    recordings_url,
    redact,
    retry_delay,
    server_delay,
    status_error,
    unwrap,
)

BASE = URL("https://api.cloudflare.com/client/v4")


# -- URLs ------------------------------------------------------------------------------


def test_recordings_url() -> None:
    url = recordings_url(BASE, "acc", "app", "rec-1")
    assert (
        str(url)
        == "https://api.cloudflare.com/client/v4/accounts/acc/realtime/kit/app/recordings/rec-1"
    )


@pytest.mark.parametrize(
    ("segment", "raw"),
    [
        ("../x", "..%2Fx"),
        ("a/b", "a%2Fb"),
        ("a b", "a%20b"),
        ("?q#f", "%3Fq%23f"),
        ("%2F", "%252F"),
    ],
)
def test_hostile_ids_stay_one_segment(segment: str, raw: str) -> None:
    url = recordings_url(BASE, "acc", "app", segment)
    assert url.raw_path == f"/client/v4/accounts/acc/realtime/kit/app/recordings/{raw}"
    assert url.query_string == ""
    assert url.host == "api.cloudflare.com"


def test_base_url_with_trailing_slash() -> None:
    url = recordings_url(URL("http://127.0.0.1:8080/client/v4/"), "a", "b")
    assert url.raw_path == "/client/v4/accounts/a/realtime/kit/b/recordings"


@given(st.text(min_size=1).filter(lambda s: s.strip() and s not in {".", ".."}))
def test_any_id_is_exactly_one_segment(segment: str) -> None:
    url = recordings_url(BASE, "acc", "app", segment)
    prefix = "/client/v4/accounts/acc/realtime/kit/app/recordings/"
    assert url.raw_path.startswith(prefix)
    assert "/" not in url.raw_path[len(prefix) :]
    assert url.path[len(prefix) :] == segment


# -- queries -----------------------------------------------------------------------------


def test_list_query_repeats_status_and_formats_values() -> None:
    params = ListRecordingsParams(
        meeting_id="m1",
        status=["UPLOADED", "ERRORED"],
        search="standup",
        start_time=datetime(2025, 1, 1, tzinfo=UTC),
        end_time=datetime(2025, 1, 2, 12, 30, tzinfo=UTC),
        expired=False,
        sort_by="invokedTime",
        sort_order="ASC",
        page_no=3,
        per_page=50,
    )
    assert list_query(params) == [
        ("meeting_id", "m1"),
        ("status", "UPLOADED"),
        ("status", "ERRORED"),
        ("search", "standup"),
        ("start_time", "2025-01-01T00:00:00.000Z"),
        ("end_time", "2025-01-02T12:30:00.000Z"),
        ("expired", "false"),
        ("sort_by", "invokedTime"),
        ("sort_order", "ASC"),
        ("page_no", "3"),
        ("per_page", "50"),
    ]


def test_list_query_defaults_only_paging() -> None:
    assert list_query(ListRecordingsParams()) == [("page_no", "1"), ("per_page", "100")]


# -- answers -------------------------------------------------------------------------------


def test_unwrap_returns_envelope() -> None:
    assert unwrap(200, {}, b'{"success": true, "data": {"id": "x"}}') == {
        "success": True,
        "data": {"id": "x"},
    }


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (418, APIStatusError),
    ],
)
def test_status_maps_to_class(status: int, cls: type[APIStatusError]) -> None:
    body = b'{"success": false, "error": {"code": 1234, "message": "nope"}}'
    err = status_error(status, {"cf-ray": "ray-1"}, body, method="GET", path="/p")
    assert type(err) is cls
    assert (err.status, err.code, err.message, err.request_id, err.body) == (
        status,
        1234,
        "nope",
        "ray-1",
        body,
    )
    assert str(err) == f"GET /p: HTTP {status} (code 1234): nope [cf-ray ray-1]"


def test_cloudflare_v4_error_shape() -> None:
    body = (
        b'{"success": false, "errors": [{"code": 10000, "message": "Authentication error"},'
        b' {"code": 9109, "message": "Invalid access token"}], "messages": [], "result": null}'
    )
    err = status_error(401, {}, body)
    assert isinstance(err, AuthenticationError)
    assert err.code == 10000
    assert err.message == "Authentication error; Invalid access token"


def test_html_error_page() -> None:
    body = b"<html><head><title>502 Bad Gateway</title></head>\n<body>cloudflare</body></html>"
    err = status_error(502, {}, body)
    assert isinstance(err, InternalServerError)
    assert err.code is None
    assert err.message.startswith("unexpected answer: <html><head><title>502 Bad Gateway")
    assert "\n" not in err.message


def test_success_false_on_2xx_is_an_error() -> None:
    with pytest.raises(APIStatusError) as info:
        unwrap(200, {}, b'{"success": false, "error": {"code": 7, "message": "quota"}}')
    assert info.value.status == 200
    assert info.value.message == "quota"


@pytest.mark.parametrize("body", [b"<html>ok</html>", b"[1, 2]", b'"text"'])
def test_2xx_that_is_not_an_object(body: bytes) -> None:
    with pytest.raises(APIResponseValidationError) as info:
        unwrap(200, {}, body, method="GET", path="/p")
    assert info.value.status == 200
    assert info.value.body == body


@pytest.mark.parametrize("body", [b"", b" \r\n"])
def test_an_empty_2xx_body_is_an_empty_envelope(body: bytes) -> None:
    # The legacy track start documents no answer body; each endpoint judges {} itself.
    assert unwrap(200, {}, body) == {}


def test_rate_limit_error_carries_retry_after() -> None:
    err = status_error(429, {"retry-after": "7"}, b"{}")
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 7.0


# -- retries -------------------------------------------------------------------------------

POLICY = RetryPolicy(max_retries=3, initial_delay=0.5, max_delay=8.0, max_server_delay=60.0)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_idempotent_retries_on_transient_status(status: int) -> None:
    assert retry_delay(POLICY, 0, idempotent=True, status=status) == 0.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_no_retry_on_client_errors(status: int) -> None:
    assert retry_delay(POLICY, 0, idempotent=True, status=status) is None


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_non_idempotent_not_retried_when_maybe_processed(status: int) -> None:
    assert retry_delay(POLICY, 0, idempotent=False, status=status) is None


def test_non_idempotent_retried_when_provably_unprocessed() -> None:
    assert retry_delay(POLICY, 0, idempotent=False, status=429) == 0.5
    assert retry_delay(POLICY, 0, idempotent=False, failure=Failure.CONNECT) == 0.5
    assert retry_delay(POLICY, 0, idempotent=False, failure=Failure.AFTER_SEND) is None
    assert retry_delay(POLICY, 0, idempotent=True, failure=Failure.AFTER_SEND) == 0.5


def test_backoff_grows_and_caps() -> None:
    policy = RetryPolicy(max_retries=10, initial_delay=0.5, max_delay=8.0)
    delays = [retry_delay(policy, n, idempotent=True, status=503) for n in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_takes_off_at_most_a_quarter() -> None:
    assert retry_delay(POLICY, 1, idempotent=True, status=503, jitter=0.0) == 1.0
    assert retry_delay(POLICY, 1, idempotent=True, status=503, jitter=0.999) == pytest.approx(
        0.75025
    )


def test_attempts_are_bounded() -> None:
    assert retry_delay(POLICY, 2, idempotent=True, status=503) is not None
    assert retry_delay(POLICY, 3, idempotent=True, status=503) is None
    assert retry_delay(RetryPolicy(max_retries=0), 0, idempotent=True, status=503) is None


def test_server_delay_honoured_up_to_cap() -> None:
    assert retry_delay(POLICY, 0, idempotent=True, status=429, headers={"retry-after": "3"}) == 3.0
    assert (
        retry_delay(POLICY, 0, idempotent=True, status=429, headers={"retry-after-ms": "250"})
        == 0.25
    )
    # Longer than the cap: retrying early would fail again; the caller gets the error.
    assert (
        retry_delay(POLICY, 0, idempotent=True, status=429, headers={"retry-after": "300"}) is None
    )


def test_server_delay_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert server_delay({"retry-after": "Wed, 01 Jan 2025 12:00:10 GMT"}, now=now) == 10.0
    assert server_delay({"retry-after": "Wed, 01 Jan 2025 11:00:00 GMT"}, now=now) == 0.0
    assert server_delay({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert server_delay({"retry-after": "soon"}) is None
    assert server_delay({"retry-after": "-1"}) is None
    assert server_delay({"retry-after": "nan"}) is None
    assert server_delay({}) is None


@given(
    attempt=st.integers(min_value=0, max_value=50),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
    server=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    status=st.sampled_from([408, 429, 500, 502, 503, 504]),
)
def test_delays_stay_within_bounds(
    attempt: int, jitter: float, server: float | None, status: int
) -> None:
    policy = RetryPolicy(max_retries=100)
    headers = {} if server is None else {"retry-after": repr(server)}
    delay = retry_delay(
        policy, attempt, idempotent=True, status=status, headers=headers, jitter=jitter
    )
    if server is not None and server > policy.max_server_delay:
        assert delay is None
    else:
        assert delay is not None
        assert 0 <= delay <= max(policy.max_delay, policy.max_server_delay)
        if server is None:
            assert delay >= 0.75 * min(policy.initial_delay * 2**attempt, policy.max_delay)


@given(
    status=st.one_of(st.none(), st.integers(min_value=100, max_value=599)),
    failure=st.one_of(st.none(), st.sampled_from(Failure)),
    attempt=st.integers(min_value=0, max_value=5),
)
def test_non_idempotent_never_retried_after_possible_processing(
    status: int | None, failure: Failure | None, attempt: int
) -> None:
    delay = retry_delay(POLICY, attempt, idempotent=False, status=status, failure=failure)
    if delay is not None:
        assert status == 429 or failure is Failure.CONNECT


# -- paging ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "per_page", "pages"),
    [(0, 10, 0), (1, 10, 1), (10, 10, 1), (11, 10, 2), (30, 25, 2), (20000, 100, 200)],
)
def test_page_count(total: int, per_page: int, pages: int) -> None:
    assert page_count(total, per_page) == pages


# -- was it carried out? ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "failure", "expected"),
    [
        (None, Failure.AFTER_SEND, True),
        (None, Failure.CONNECT, False),
        (429, None, False),
        (500, None, True),
        (503, None, True),
        (408, None, True),
        (404, None, False),
    ],
)
def test_possibly_processed(status: int | None, failure: Failure | None, expected: bool) -> None:
    assert possibly_processed(status=status, failure=failure) is expected


def test_redact_keeps_host_and_path() -> None:
    text = "bad value 'https://files.example/r/1.mp4?X-Signature=abc&X-Expires=9' in field"
    assert redact(text) == "bad value 'https://files.example/r/1.mp4?…' in field"
    assert redact("https:\\/\\/h.example\\/a?sig=1") == "https:\\/\\/h.example\\/a?…"
