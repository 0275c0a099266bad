"""The client over real HTTP (aiointercept): requests sent, results decoded, errors, retries."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
from aiointercept import CallbackResult

from realtimekit_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AudioConfig,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Hooks,
    InternalServerError,
    NotFoundError,
    RateLimit,
    RateLimitError,
    RealtimeKit,
    Recording,
    RecordingPage,
    RecordingStatus,
    RetryPolicy,
    StorageConfig,
    ValidationError,
    VideoConfig,
    __version__,
)

from ._support import ACCOUNT, APP, BASE, FAST_RETRY, RECORDINGS, TOKEN, ok, recording_json, sent

REC_ID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"


def assert_api_headers(request: Any, *, body: bool = False) -> None:
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"].startswith(f"realtimekit_async/{__version__} ")
    assert request.headers["Accept"] == "application/json"
    if body:
        assert request.headers["Content-Type"] == "application/json"


# -- endpoints ---------------------------------------------------------------------------


async def test_get(api: Any, client: RealtimeKit) -> None:
    api.get(
        f"{RECORDINGS}/{REC_ID}",
        payload=ok(
            recording_json(
                status="UPLOADED",
                file_size=2044680,
                start_reason={
                    "caller": {"type": "ORGANIZATION", "user_Id": "u1"},
                    "reason": "API_CALL",
                },
            )
        ),
    )
    rec = await client.recordings.get(REC_ID)
    (request,) = sent(api)
    assert request.method == "GET"
    assert (
        request.raw_path == f"/client/v4/accounts/{ACCOUNT}/realtime/kit/{APP}/recordings/{REC_ID}"
    )
    assert request.captured_body is None
    assert_api_headers(request)
    assert isinstance(rec, Recording)
    assert rec.status is RecordingStatus.UPLOADED
    assert rec.file_size == 2044680
    assert rec.start_reason is not None
    assert rec.start_reason.caller is not None
    assert rec.start_reason.caller.user_id == "u1"


async def test_start_sends_only_given_fields(api: Any, client: RealtimeKit) -> None:
    api.post(RECORDINGS, status=201, payload=ok(recording_json()))
    rec = await client.recordings.start(
        "meet-1",
        max_seconds=600,
        audio_config=AudioConfig(codec="AAC", channel="stereo", export_file=True),
        video_config=VideoConfig(width=1280, height=720),
        storage_config=StorageConfig(type="aws", bucket="b", secret="s"),
        allow_multiple_recordings=True,
        file_name_prefix="daily",
        url="https://example.com/page",
    )
    (request,) = sent(api)
    assert request.method == "POST"
    assert request.raw_path.endswith(f"/realtime/kit/{APP}/recordings")
    assert request.query_string == ""
    assert_api_headers(request, body=True)
    assert json.loads(request.captured_body) == {
        "meeting_id": "meet-1",
        "allow_multiple_recordings": True,
        "audio_config": {"channel": "stereo", "codec": "AAC", "export_file": True},
        "file_name_prefix": "daily",
        "max_seconds": 600,
        "storage_config": {"type": "aws", "bucket": "b", "secret": "s"},
        "url": "https://example.com/page",
        "video_config": {"height": 720, "width": 1280},
    }
    assert rec.status is RecordingStatus.INVOKED


async def test_get_active(api: Any, client: RealtimeKit) -> None:
    api.get(f"{RECORDINGS}/active-recording/meet-1", payload=ok(recording_json(status="RECORDING")))
    rec = await client.recordings.get_active("meet-1")
    (request,) = sent(api)
    assert request.raw_path.endswith("/recordings/active-recording/meet-1")
    assert rec.status is RecordingStatus.RECORDING


@pytest.mark.parametrize(
    ("call", "action"), [("stop", "stop"), ("pause", "pause"), ("resume", "resume")]
)
async def test_actions(api: Any, client: RealtimeKit, call: str, action: str) -> None:
    api.put(f"{RECORDINGS}/{REC_ID}", payload=ok(recording_json(status="UPLOADING")))
    rec = await getattr(client.recordings, call)(REC_ID)
    (request,) = sent(api)
    assert request.method == "PUT"
    assert request.raw_path.endswith(f"/recordings/{REC_ID}")
    assert_api_headers(request, body=True)
    assert json.loads(request.captured_body) == {"action": action}
    assert rec.status == "UPLOADING"


async def test_pause_resume_stop_takes_a_string(api: Any, client: RealtimeKit) -> None:
    api.put(f"{RECORDINGS}/{REC_ID}", payload=ok(recording_json(status="PAUSED")))
    rec = await client.recordings.pause_resume_stop(REC_ID, "pause")
    assert json.loads(sent(api)[0].captured_body) == {"action": "pause"}
    assert rec.status is RecordingStatus.PAUSED


async def test_list_one_page(api: Any, client: RealtimeKit) -> None:
    api.get(
        f"{RECORDINGS}?meeting_id=m1&status=UPLOADED&status=ERRORED&expired=true&page_no=2&per_page=5",
        payload=ok(
            [recording_json(id="a"), recording_json(id="b")],
            paging={"start_offset": 6, "end_offset": 7, "total_count": 7},
        ),
    )
    page = await client.recordings.list(
        meeting_id="m1",
        status=[RecordingStatus.UPLOADED, "ERRORED"],
        expired=True,
        page_no=2,
        per_page=5,
    )
    (request,) = sent(api)
    assert request.method == "GET"
    assert list(request.query.items()) == [
        ("meeting_id", "m1"),
        ("status", "UPLOADED"),
        ("status", "ERRORED"),
        ("expired", "true"),
        ("page_no", "2"),
        ("per_page", "5"),
    ]
    assert isinstance(page, RecordingPage)
    assert [r.id for r in page.data] == ["a", "b"]
    assert page.paging.total_count == 7


async def test_app_id_per_call(api: Any, client: RealtimeKit) -> None:
    api.get(
        f"{BASE}/accounts/{ACCOUNT}/realtime/kit/other-app/recordings/{REC_ID}",
        payload=ok(recording_json()),
    )
    await client.recordings.get(REC_ID, app_id="other-app")
    assert sent(api)[0].raw_path.startswith(
        f"/client/v4/accounts/{ACCOUNT}/realtime/kit/other-app/"
    )


@pytest.mark.parametrize(("rec_id", "raw"), [("../x", "..%2Fx"), ("a/b", "a%2Fb")])
async def test_hostile_ids_cannot_change_the_path(
    api: Any, client: RealtimeKit, rec_id: str, raw: str
) -> None:
    api.add(__import__("re").compile(".*"), "GET", payload=ok(recording_json()))
    await client.recordings.get(rec_id)
    assert (
        sent(api)[0].raw_path
        == f"/client/v4/accounts/{ACCOUNT}/realtime/kit/{APP}/recordings/{raw}"
    )


# -- bad input never reaches the network ---------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.recordings.get(""), "recording_id"),
        (lambda c: c.recordings.get(".."), "recording_id"),
        (lambda c: c.recordings.get_active(" "), "meeting_id"),
        (lambda c: c.recordings.stop(""), "recording_id"),
        (lambda c: c.recordings.pause_resume_stop("r", ""), "action"),
        (lambda c: c.recordings.start("m", max_seconds=30), "max_seconds"),
        (lambda c: c.recordings.start(""), "meeting_id"),
        (lambda c: c.recordings.start_track("m", layers={}), "layers"),
        (lambda c: c.recordings.get("r", app_id=""), "app_id"),
    ],
)
async def test_validation_before_request(
    api: Any, client: RealtimeKit, call: Any, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        await call(client)
    assert info.value.field == field
    assert sent(api) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"per_page": 0}, "per_page"),
        ({"page_no": 0}, "page_no"),
        ({"status": [7]}, "status"),
        ({"prefetch": 0}, "prefetch"),
        ({"meeting_id": ""}, "meeting_id"),
    ],
)
async def test_list_validates_eagerly(
    api: Any, client: RealtimeKit, kwargs: Any, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        client.recordings.list(**kwargs)
    assert info.value.field == field
    assert sent(api) == []


async def test_missing_app_id_is_caught_before_sending(api: Any) -> None:
    async with RealtimeKit(api_token=TOKEN, account_id=ACCOUNT) as rtk:
        with pytest.raises(ValidationError, match="app_id"):
            await rtk.recordings.get(REC_ID)
        with pytest.raises(ValidationError, match="app_id"):
            rtk.recordings.list()
    assert sent(api) == []


# -- errors ------------------------------------------------------------------------------------


async def test_not_found_realtimekit_shape(api: Any, client: RealtimeKit) -> None:
    api.get(
        f"{RECORDINGS}/active-recording/m1",
        status=404,
        payload={"success": False, "error": {"code": 404, "message": "No active recording found"}},
        headers={"cf-ray": "8f1e2d3c4b5a-LHR"},
    )
    with pytest.raises(NotFoundError) as info:
        await client.recordings.get_active("m1")
    err = info.value
    assert (err.status, err.code, err.message, err.request_id) == (
        404,
        404,
        "No active recording found",
        "8f1e2d3c4b5a-LHR",
    )
    assert b"No active recording found" in err.body
    assert TOKEN not in str(err)
    assert TOKEN not in repr(err)


async def test_auth_error_v4_shape(api: Any, client: RealtimeKit) -> None:
    api.get(
        f"{RECORDINGS}/{REC_ID}",
        status=401,
        payload={
            "success": False,
            "errors": [{"code": 10000, "message": "Authentication error"}],
            "messages": [],
            "result": None,
        },
    )
    with pytest.raises(AuthenticationError) as info:
        await client.recordings.get(REC_ID)
    assert info.value.code == 10000
    assert len(sent(api)) == 1  # never retried


async def test_conflict_on_start_is_not_retried(api: Any, client: RealtimeKit) -> None:
    api.post(
        RECORDINGS,
        status=409,
        payload={"success": False, "error": {"code": 409, "message": "active"}},
    )
    with pytest.raises(ConflictError):
        await client.recordings.start("m1")
    assert len(sent(api)) == 1


async def test_success_false_on_200(api: Any, client: RealtimeKit) -> None:
    api.get(
        f"{RECORDINGS}/{REC_ID}", payload={"success": False, "error": {"code": 3, "message": "odd"}}
    )
    with pytest.raises(APIStatusError) as info:
        await client.recordings.get(REC_ID)
    assert (info.value.status, info.value.message) == (200, "odd")


async def test_wrong_shape_on_200(api: Any, client: RealtimeKit) -> None:
    api.get(f"{RECORDINGS}/{REC_ID}", payload=ok({"status": "UPLOADED"}))  # no id
    with pytest.raises(APIResponseValidationError, match="Recording"):
        await client.recordings.get(REC_ID)


async def test_shape_error_does_not_quote_a_presigned_query(api: Any, client: RealtimeKit) -> None:
    signed = "https://files.example/r.mp4?X-Signature=s3cr3t"
    api.get(f"{RECORDINGS}/{REC_ID}", payload=ok(recording_json(file_size=signed)))
    with pytest.raises(APIResponseValidationError) as info:
        await client.recordings.get(REC_ID)
    assert "X-Signature" not in str(info.value)
    assert "https://files.example/r.mp4?…" in str(info.value)


async def test_html_200(api: Any, client: RealtimeKit) -> None:
    api.get(f"{RECORDINGS}/{REC_ID}", body="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(APIResponseValidationError, match="not JSON"):
        await client.recordings.get(REC_ID)


# -- retries -------------------------------------------------------------------------------------


async def test_get_retries_transient_errors(api: Any, client: RealtimeKit) -> None:
    url = f"{RECORDINGS}/{REC_ID}"
    api.get(url, status=503, body="<html>503</html>", content_type="text/html")
    api.get(url, status=429, payload={}, headers={"retry-after-ms": "1"})
    api.get(url, payload=ok(recording_json()))
    rec = await client.recordings.get(REC_ID)
    assert rec.id == REC_ID
    assert len(sent(api)) == 3


async def test_get_gives_up_after_max_retries(api: Any, client: RealtimeKit) -> None:
    api.get(
        f"{RECORDINGS}/{REC_ID}",
        status=502,
        body="<html>Bad Gateway</html>",
        content_type="text/html",
        repeat=True,
    )
    with pytest.raises(InternalServerError) as info:
        await client.recordings.get(REC_ID)
    assert info.value.status == 502
    assert len(sent(api)) == 3  # first try + 2 retries


async def test_start_not_retried_on_5xx(api: Any, client: RealtimeKit) -> None:
    api.post(RECORDINGS, status=503, payload={}, repeat=True)
    with pytest.raises(InternalServerError):
        await client.recordings.start("m1")
    assert len(sent(api)) == 1


async def test_start_retried_on_429(api: Any, client: RealtimeKit) -> None:
    api.post(
        RECORDINGS,
        status=429,
        payload={"success": False, "error": {"code": 429, "message": "slow down"}},
    )
    api.post(RECORDINGS, payload=ok(recording_json()))
    rec = await client.recordings.start("m1")
    assert rec.id == REC_ID
    assert len(sent(api)) == 2


async def test_429_with_long_retry_after_is_raised(api: Any, client: RealtimeKit) -> None:
    api.get(f"{RECORDINGS}/{REC_ID}", status=429, payload={}, headers={"retry-after": "300"})
    with pytest.raises(RateLimitError) as info:
        await client.recordings.get(REC_ID)
    assert info.value.retry_after == 300.0
    assert len(sent(api)) == 1


async def test_reset_connection_retried_for_get_not_for_start(
    api: Any, client: RealtimeKit
) -> None:
    api.get(f"{RECORDINGS}/{REC_ID}", exception=True)
    api.get(f"{RECORDINGS}/{REC_ID}", payload=ok(recording_json()))
    assert (await client.recordings.get(REC_ID)).id == REC_ID
    api.post(RECORDINGS, exception=True, repeat=True)
    with pytest.raises(APIConnectionError):
        await client.recordings.start("m1")
    assert [r.method for r in sent(api)] == ["GET", "GET", "POST"]


async def test_timeout(api: Any) -> None:
    async def slow(url: Any, **kwargs: Any) -> CallbackResult:
        await asyncio.sleep(0.3)
        return CallbackResult(payload=ok(recording_json()))

    api.get(f"{RECORDINGS}/{REC_ID}", callback=slow, repeat=True)
    api.post(RECORDINGS, callback=slow, repeat=True)
    async with RealtimeKit(
        api_token=TOKEN,
        account_id=ACCOUNT,
        app_id=APP,
        # Each attempt waits 0.05 s for its answer; the call's deadline is far away.
        timeout=aiohttp.ClientTimeout(total=30, sock_read=0.05),
        max_retries=RetryPolicy(max_retries=1, initial_delay=0.001),
        rate_limit=None,
    ) as rtk:
        with pytest.raises(APITimeoutError):
            await rtk.recordings.get(REC_ID)
        with pytest.raises(APITimeoutError):
            await rtk.recordings.start("m1")
    assert [r.method for r in sent(api)] == ["GET", "GET", "POST"]


async def test_connection_refused_is_retried_even_for_start(unused_tcp_port: int) -> None:
    attempts: list[str] = []  # every attempt, as aiohttp starts it (nothing listens)

    async def on_request_start(_session: Any, _context: Any, params: Any) -> None:
        attempts.append(f"{params.method} {params.url.path}")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        RealtimeKit(
            api_token=TOKEN,
            account_id=ACCOUNT,
            app_id=APP,
            rate_limit=None,
            base_url=f"http://127.0.0.1:{unused_tcp_port}/client/v4",
            max_retries=FAST_RETRY,
            session=session,
        ) as rtk,
    ):
        with pytest.raises(APIConnectionError, match="cannot connect"):
            await rtk.recordings.start("m1")
    assert len(attempts) == 1 + FAST_RETRY.max_retries == 3
    assert all(a.startswith(f"POST /client/v4/accounts/{ACCOUNT}/") for a in attempts)


async def test_refused_retry_of_an_applied_action_is_reconciled(
    api: Any, client: RealtimeKit
) -> None:
    # The first stop reached the server but its answer was lost (503); the retry is
    # refused because the recording is no longer running. It did stop: say so.
    url = f"{RECORDINGS}/{REC_ID}"
    api.put(url, status=503, payload={})
    api.put(
        url,
        status=400,
        payload={"success": False, "error": {"code": 400, "message": "invalid transition"}},
    )
    api.get(url, payload=ok(recording_json(status="UPLOADING")))
    rec = await client.recordings.stop(REC_ID)
    assert rec.status is RecordingStatus.UPLOADING
    assert [r.method for r in sent(api)] == ["PUT", "PUT", "GET"]


async def test_refused_retry_is_raised_when_the_action_did_not_happen(
    api: Any, client: RealtimeKit
) -> None:
    url = f"{RECORDINGS}/{REC_ID}"
    api.put(url, status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    api.put(url, status=400, payload={"success": False, "error": {"code": 400, "message": "no"}})
    api.get(url, payload=ok(recording_json(status="RECORDING")))
    with pytest.raises(BadRequestError) as info:
        await client.recordings.pause(REC_ID)
    assert info.value.possibly_applied is True
    assert [r.method for r in sent(api)] == ["PUT", "PUT", "GET"]


async def test_first_attempt_refusal_is_not_second_guessed(api: Any, client: RealtimeKit) -> None:
    api.put(
        f"{RECORDINGS}/{REC_ID}",
        status=400,
        payload={"success": False, "error": {"code": 400, "message": "no"}},
    )
    with pytest.raises(BadRequestError) as info:
        await client.recordings.stop(REC_ID)
    assert info.value.possibly_applied is False
    assert [r.method for r in sent(api)] == ["PUT"]


# -- configuration, lifecycle, logging ---------------------------------------------------------


def test_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "env-token")
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "env-acc")
    monkeypatch.setenv("REALTIMEKIT_APP_ID", "env-app")
    monkeypatch.setenv("REALTIMEKIT_BASE_URL", "http://127.0.0.1:9/client/v4")
    rtk = RealtimeKit()
    assert rtk.options.api_token == "env-token"
    assert (rtk.options.account_id, rtk.options.app_id) == ("env-acc", "env-app")
    assert str(rtk.options.base_url) == "http://127.0.0.1:9/client/v4"
    # Arguments win over the environment.
    assert RealtimeKit(account_id="arg-acc").options.account_id == "arg-acc"


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REALTIMEKIT_BASE_URL", raising=False)
    rtk = RealtimeKit(api_token="t", account_id="a")
    assert str(rtk.options.base_url) == "https://api.cloudflare.com/client/v4"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"account_id": "a"}, "api_token"),
        ({"api_token": "t"}, "account_id"),
        ({"api_token": "t", "account_id": "a", "base_url": "ftp://x"}, "base_url"),
        ({"api_token": "t", "account_id": "a", "timeout": 0}, "timeout"),
        ({"api_token": "t", "account_id": "a", "max_retries": -1}, "max_retries"),
        ({"api_token": "t", "account_id": "a", "max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_bad_construction(monkeypatch: pytest.MonkeyPatch, kwargs: Any, field: str) -> None:
    for var in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValidationError) as info:
        RealtimeKit(**kwargs)
    assert info.value.field == field


def test_bad_rate_limit() -> None:
    with pytest.raises(ValidationError, match=r"rate_limit\.max_requests"):
        RateLimit(0, 1)
    with pytest.raises(ValidationError, match=r"rate_limit\.period"):
        RateLimit(10, 0)


def test_token_never_in_repr() -> None:
    rtk = RealtimeKit(api_token="sekrit-token-value", account_id="a", app_id="b")
    assert "sekrit-token-value" not in repr(rtk)
    assert "sekrit-token-value" not in repr(rtk.options)
    assert (
        repr(rtk)
        == "RealtimeKit(account_id='a', app_id='b', base_url='https://api.cloudflare.com/client/v4')"
    )


async def test_one_debug_line_per_request_without_secrets(
    api: Any, client: RealtimeKit, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="realtimekit_async")
    api.get(
        f"{RECORDINGS}?page_no=1&per_page=100&search=x", payload=ok([], paging={"total_count": 0})
    )
    await client.recordings.list(search="x")
    (record,) = [r for r in caplog.records if r.name == "realtimekit_async"]
    message = record.getMessage()
    assert message.startswith(
        f"GET /client/v4/accounts/{ACCOUNT}/realtime/kit/{APP}/recordings -> 200 in "
    )
    assert message.endswith("s (retry 0)")
    assert TOKEN not in message
    assert "search" not in message


async def test_owned_session_is_closed_on_exit(api: Any) -> None:
    async with RealtimeKit(api_token=TOKEN, account_id=ACCOUNT, app_id=APP) as rtk:
        session = rtk.session
        assert not session.closed
    assert session.closed
    with pytest.raises(Exception, match="closed"):
        await rtk.recordings.get(REC_ID)
    await rtk.close()  # idempotent


async def test_user_session_is_used_and_left_open(api: Any) -> None:
    api.get(f"{RECORDINGS}/{REC_ID}", payload=ok(recording_json()))
    async with aiohttp.ClientSession(headers={"X-Trace": "mine"}) as session:
        async with RealtimeKit(
            api_token=TOKEN, account_id=ACCOUNT, app_id=APP, session=session
        ) as rtk:
            assert rtk.session is session
            await rtk.recordings.get(REC_ID)
        assert not session.closed
    assert sent(api)[0].headers["X-Trace"] == "mine"
    assert sent(api)[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_with_options(api: Any, client: RealtimeKit) -> None:
    api.get(f"{RECORDINGS}/{REC_ID}", status=503, payload={}, repeat=True)
    api.get(
        f"{BASE}/accounts/{ACCOUNT}/realtime/kit/app2/recordings/{REC_ID}",
        payload=ok(recording_json()),
    )
    no_retry = client.with_options(max_retries=0)
    with pytest.raises(InternalServerError):
        await no_retry.recordings.get(REC_ID)
    assert len(sent(api)) == 1
    other = client.with_options(app_id="app2")
    assert (await other.recordings.get(REC_ID)).id == REC_ID
    assert other.session is client.session
    await other.close()  # a copy never closes the shared session
    assert not client.session.closed
    assert client.options.app_id == APP  # the original is unchanged


async def test_rate_limiter_holds_back_requests(api: Any) -> None:
    """The second call of a one-per-0.3-s window is sent when the window lets it, not before."""
    api.get(f"{RECORDINGS}/{REC_ID}", payload=ok(recording_json()), repeat=True)
    loop = asyncio.get_running_loop()
    sent_at: list[float] = []
    async with RealtimeKit(
        api_token=TOKEN,
        account_id=ACCOUNT,
        app_id=APP,
        rate_limit=RateLimit(1, 0.3),
        hooks=Hooks(on_request=lambda _event: sent_at.append(loop.time())),
    ) as rtk:
        await rtk.recordings.get(REC_ID)
        await rtk.recordings.get(REC_ID)
    assert len(sent(api)) == 2
    assert sent_at[1] - sent_at[0] >= 0.29  # the limiter's slot is taken just before the hook
