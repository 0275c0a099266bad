"""Production ergonomics: raw responses, per-call options, hooks, the call deadline, logging."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
from aiointercept import CallbackResult

from realtimekit_async import (
    APIResponse,
    APIResponseValidationError,
    APITimeoutError,
    Hooks,
    InternalServerError,
    RealtimeKit,
    Recording,
    RecordingPage,
    Recordings,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    RetryPolicy,
    TrackLayer,
    TrackOutput,
    TrackOutputType,
    ValidationError,
)
from realtimekit_async._logging import configure_from_env

from ._support import APP, FAST_RETRY, RECORDINGS, TOKEN, ok, recording_json, sent

REC_ID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
RAY = "8f1e2d3c4b5a-LHR"


def quick_client(**options: Any) -> RealtimeKit:
    settings: dict[str, Any] = {"rate_limit": None, "max_retries": FAST_RETRY, **options}
    return RealtimeKit(api_token=TOKEN, account_id="acc123", app_id=APP, **settings)


# -- raw responses ---------------------------------------------------------------------


async def test_raw_get_has_status_headers_request_id_and_the_parsed_recording(
    api: Any, client: RealtimeKit
) -> None:
    url = f"{RECORDINGS}/{REC_ID}"
    api.get(url, status=503, payload={})
    api.get(
        url,
        payload=ok(recording_json()),
        headers={"cf-ray": RAY, "RateLimit-Remaining": "999"},
    )
    raw = await client.recordings.with_raw_response.get(REC_ID)
    assert isinstance(raw, APIResponse)
    assert (raw.method, raw.status_code, raw.request_id, raw.retries_taken) == (
        "GET",
        200,
        RAY,
        1,
    )
    assert raw.path.endswith(f"/recordings/{REC_ID}")
    assert raw.headers["ratelimit-remaining"] == "999"  # case-insensitive
    assert json.loads(raw.content)["data"]["id"] == REC_ID
    assert raw.elapsed >= 0
    recording = raw.parse()
    assert isinstance(recording, Recording)
    api.get(url, payload=ok(recording_json()))
    assert recording == await client.recordings.get(REC_ID)
    assert TOKEN not in repr(raw)


async def test_raw_list_is_one_page(api: Any, client: RealtimeKit) -> None:
    api.get(
        f"{RECORDINGS}?page_no=2&per_page=1",
        payload=ok([recording_json()], paging={"total_count": 3}),
        headers={"cf-ray": RAY},
    )
    raw = await client.recordings.with_raw_response.list(page_no=2, per_page=1)
    page = raw.parse()
    assert isinstance(page, RecordingPage)
    assert [r.id for r in page.data] == [REC_ID]
    assert (raw.status_code, raw.request_id) == (200, RAY)


async def test_raw_start_track_without_data_parses_to_none(api: Any, client: RealtimeKit) -> None:
    api.post(f"{RECORDINGS}/track", status=201, payload={"success": True, "data": None})
    layers = {"l": TrackLayer(outputs=[TrackOutput(type=TrackOutputType.REALTIMEKIT_BUCKET)])}
    raw = await client.recordings.with_raw_response.start_track("m1", layers=layers)
    assert (raw.status_code, raw.parse()) == (201, None)


async def test_raw_stop_reconciled_by_a_get_answers_with_the_get(
    api: Any, client: RealtimeKit
) -> None:
    url = f"{RECORDINGS}/{REC_ID}"
    api.put(url, status=503, payload={})
    api.put(url, status=409, payload={"success": False, "error": {"message": "invalid"}})
    api.get(url, payload=ok(recording_json(status="UPLOADING")), headers={"cf-ray": RAY})
    raw = await client.recordings.with_raw_response.stop(REC_ID)
    assert (raw.method, raw.request_id, raw.parse().status) == ("GET", RAY, "UPLOADING")


def test_every_api_method_has_a_raw_twin_with_the_same_signature(client: RealtimeKit) -> None:
    methods = {
        name
        for name, member in inspect.getmembers(Recordings)
        if not name.startswith("_")
        and callable(member)
        and name != "wait_for"  # many calls, not one answer
    }
    raw = client.recordings.with_raw_response
    assert {name for name in vars(raw) if not name.startswith("_")} == methods
    for name in methods:
        plain = inspect.signature(getattr(client.recordings, name))
        assert inspect.signature(getattr(raw, name)) == plain, name


async def test_a_shape_error_carries_the_real_status_and_body(
    api: Any, client: RealtimeKit
) -> None:
    api.post(RECORDINGS, status=201, payload=ok({"id": 5}))
    with pytest.raises(APIResponseValidationError, match="unexpected response shape") as info:
        await client.recordings.start("m1")
    assert info.value.status == 201
    assert json.loads(info.value.body) == {"success": True, "data": {"id": 5}}
    assert info.value.path.endswith("/recordings")


# -- per-call options ------------------------------------------------------------------


async def test_extra_headers_query_and_body_are_merged_last(api: Any, client: RealtimeKit) -> None:
    api.post(f"{RECORDINGS}?beta=1", status=201, payload=ok(recording_json()))
    await client.recordings.start(
        "m1",
        max_seconds=60,
        extra_headers={"X-Trace": "t1", "accept": "application/json; v=2"},
        extra_query={"beta": "1"},
        extra_body={"max_seconds": 120, "new_flag": True},
    )
    (request,) = sent(api)
    assert request.headers["X-Trace"] == "t1"
    assert request.headers.getall("Accept") == ["application/json; v=2"]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert list(request.query.items()) == [("beta", "1")]
    assert json.loads(request.captured_body) == {
        "meeting_id": "m1",
        "max_seconds": 120,
        "new_flag": True,
    }


async def test_extra_query_applies_to_every_page(api: Any, client: RealtimeKit) -> None:
    for page_no in (1, 2):
        api.get(
            f"{RECORDINGS}?page_no={page_no}&per_page=1&x=y",
            payload=ok([recording_json(id=f"r{page_no}")], paging={"total_count": 2}),
        )
    ids = [r.id async for r in client.recordings.list(per_page=1, extra_query=[("x", "y")])]
    assert ids == ["r1", "r2"]
    assert [r.query["x"] for r in sent(api)] == ["y", "y"]


async def test_bad_call_options_fail_before_any_request(api: Any, client: RealtimeKit) -> None:
    with pytest.raises(ValidationError, match="set by the client"):
        await client.recordings.get(REC_ID, extra_headers={"Authorization": "Bearer other"})
    with pytest.raises(ValidationError, match="sends no body"):
        await client.recordings.get(REC_ID, extra_body={"x": 1})
    with pytest.raises(ValidationError, match="not a per-call option"):
        client.recordings.list(retries=1)  # type: ignore[call-arg]
    assert sent(api) == []


async def test_per_call_max_retries_and_timeout(api: Any, client: RealtimeKit) -> None:
    url = f"{RECORDINGS}/{REC_ID}"
    api.get(url, status=503, payload={}, repeat=True)
    with pytest.raises(InternalServerError):
        await client.recordings.get(REC_ID, max_retries=0)
    assert len(sent(api)) == 1  # the client's own policy allows 2 retries

    async def slow(_url: Any, **_kwargs: Any) -> CallbackResult:
        await asyncio.sleep(0.5)
        return CallbackResult(payload=ok(recording_json()))

    api.get(f"{RECORDINGS}/slow", callback=slow)
    with pytest.raises(APITimeoutError):
        await client.recordings.get("slow", timeout=0.05, max_retries=0)


# -- hooks -----------------------------------------------------------------------------


async def test_hooks_see_each_attempt_and_retry_sync_or_async(
    api: Any,
) -> None:
    events: list[Any] = []

    async def on_response(event: ResponseEvent) -> None:
        await asyncio.sleep(0)
        events.append(event)

    hooks = Hooks(on_request=events.append, on_response=[on_response], on_retry=events.append)
    api.get(
        f"{RECORDINGS}?page_no=1&per_page=100&search=secret",
        status=503,
        payload={},
        headers={"retry-after-ms": "1"},
    )
    api.get(
        f"{RECORDINGS}?page_no=1&per_page=100&search=secret",
        payload=ok([], paging={"total_count": 0}),
        headers={"cf-ray": RAY},
    )
    async with quick_client(hooks=hooks) as rtk:
        await rtk.recordings.list(search="secret")
    path = f"/client/v4/accounts/acc123/realtime/kit/{APP}/recordings"
    route = "/accounts/{account_id}/realtime/kit/{app_id}/recordings"
    common = {"method": "GET", "path": path, "route": route}
    assert [type(e) for e in events] == [
        RequestEvent,
        ResponseEvent,
        RetryEvent,
        RequestEvent,
        ResponseEvent,
    ]
    assert events[0] == RequestEvent(**common, attempt=0)
    assert (events[1].attempt, events[1].status, events[1].request_id) == (0, 503, None)
    assert events[2] == RetryEvent(**common, attempt=0, delay=0.001, status=503)
    assert events[3] == RequestEvent(**common, attempt=1)
    assert (events[4].attempt, events[4].status, events[4].request_id) == (1, 200, RAY)
    assert all(e.elapsed >= 0 for e in events if isinstance(e, ResponseEvent))
    shown = repr(events)
    assert "secret" not in shown
    assert TOKEN not in shown
    assert "?" not in shown


async def test_a_failed_attempt_reaches_the_response_hook_without_status(
    unused_tcp_port: int,
) -> None:
    responses: list[ResponseEvent] = []
    async with quick_client(
        hooks=Hooks(on_response=responses.append),
        base_url=f"http://127.0.0.1:{unused_tcp_port}",
        max_retries=0,
    ) as rtk:
        with pytest.raises(Exception, match="cannot connect"):
            await rtk.recordings.get(REC_ID)
    ((event,),) = [responses]
    assert (event.status, event.error) == (None, "connect")


async def test_a_raising_hook_fails_the_call(api: Any) -> None:
    class StopError(Exception):
        pass

    def refuse(_event: RequestEvent) -> None:
        raise StopError

    async with quick_client(hooks=Hooks(on_request=refuse)) as rtk:
        with pytest.raises(StopError):
            await rtk.recordings.get(REC_ID)
    assert sent(api) == []


def test_hooks_must_be_callables() -> None:
    with pytest.raises(ValidationError, match="not callable"):
        Hooks(on_request=[1])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="Hooks instance"):
        quick_client(hooks=print)


# -- the call deadline -----------------------------------------------------------------


async def test_the_deadline_spans_every_attempt_against_a_hanging_server(api: Any) -> None:
    release = asyncio.Event()
    arrived = 0

    async def hang(_url: Any, **_kwargs: Any) -> CallbackResult:
        nonlocal arrived
        arrived += 1
        await release.wait()
        return CallbackResult(payload=ok(recording_json()))

    api.get(f"{RECORDINGS}/{REC_ID}", callback=hang, repeat=True)
    retries: list[RetryEvent] = []
    loop = asyncio.get_running_loop()
    # Each attempt gives up after 0.1 s without an answer; the call after 0.35 s.
    async with quick_client(
        timeout=aiohttp.ClientTimeout(total=0.35, sock_read=0.1),
        max_retries=RetryPolicy(max_retries=50, initial_delay=0.01, max_delay=0.01),
        hooks=Hooks(on_retry=retries.append),
    ) as rtk:
        began = loop.time()
        with pytest.raises(APITimeoutError, match=r"within the 0\.35s deadline") as info:
            await rtk.recordings.get(REC_ID)
        took = loop.time() - began
    release.set()
    assert arrived >= 2  # retried after the first attempt timed out...
    assert 1 <= len(retries) < 50  # ... but stopped by the deadline, not the retry count
    # Never before the deadline (asyncio may fire a timer a clock tick early), and
    # well before 51 attempts' worth.
    assert 0.34 <= took < 5
    assert info.value.method == "GET"


async def test_a_backoff_past_the_deadline_is_not_slept(api: Any) -> None:
    # timeout=30 with max_retries=2 must not take 91 s: a 503 asking for 40 s is not
    # waited for, the call stops at once with the 503 as the cause.
    url = f"{RECORDINGS}/{REC_ID}"
    api.get(url, status=503, payload={}, headers={"retry-after": "40"}, repeat=True)
    retries: list[RetryEvent] = []
    loop = asyncio.get_running_loop()
    async with quick_client(
        timeout=30, max_retries=RetryPolicy(max_retries=2), hooks=Hooks(on_retry=retries.append)
    ) as rtk:
        began = loop.time()
        with pytest.raises(APITimeoutError, match=r"30\.0s deadline") as info:
            await rtk.recordings.get(REC_ID)
        took = loop.time() - began
    assert len(sent(api)) == 1
    assert retries == []
    assert isinstance(info.value.__cause__, InternalServerError)
    assert took < 30


async def test_backoffs_count_against_the_deadline(api: Any) -> None:
    url = f"{RECORDINGS}/{REC_ID}"
    api.get(url, status=503, payload={}, headers={"retry-after": "0.4"}, repeat=True)
    retries: list[RetryEvent] = []
    async with quick_client(
        timeout=1.0, max_retries=RetryPolicy(max_retries=5), hooks=Hooks(on_retry=retries.append)
    ) as rtk:
        with pytest.raises(APITimeoutError) as info:
            await rtk.recordings.get(REC_ID)
    # Sleeps of 0.4 s: two fit before 1 s, a third would not (a slow machine fits fewer).
    assert 1 <= len(retries) <= 2
    assert [r.delay for r in retries] == [0.4] * len(retries)
    assert len(sent(api)) == len(retries) + 1
    assert isinstance(info.value.__cause__, InternalServerError)


# -- logging ---------------------------------------------------------------------------


async def test_log_records_carry_structured_fields(
    api: Any, client: RealtimeKit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="realtimekit_async")
    url = f"{RECORDINGS}/{REC_ID}"
    api.get(url, status=503, payload={}, headers={"retry-after-ms": "1"})
    api.get(url, payload=ok(recording_json()), headers={"cf-ray": RAY})
    await client.recordings.get(REC_ID)
    records = [r for r in caplog.records if r.name == "realtimekit_async"]
    first, retry, second = records
    fields = ("method", "path", "status", "attempt", "request_id")
    assert [getattr(first, f) for f in fields] == [
        "GET",
        f"/client/v4/accounts/acc123/realtime/kit/{APP}/recordings/{REC_ID}",
        503,
        0,
        None,
    ]
    assert (first.levelno, second.levelno, retry.levelno) == (
        logging.DEBUG,
        logging.DEBUG,
        logging.INFO,
    )
    assert (retry.status, retry.attempt, retry.delay) == (503, 0, 0.001)  # type: ignore[attr-defined]
    assert (second.status, second.attempt, second.request_id) == (200, 1, RAY)  # type: ignore[attr-defined]
    assert all(isinstance(r.elapsed, float) for r in (first, second))  # type: ignore[attr-defined]
    assert TOKEN not in caplog.text


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "REALTIMEKIT_LOG"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_realtimekit_log_configures_the_logger_once_without_code() -> None:
    code = (
        "import logging, realtimekit_async as r\n"
        "from realtimekit_async._logging import configure_from_env\n"
        "r.RealtimeKit(api_token='t', account_id='a'); configure_from_env()\n"
        "log = logging.getLogger('realtimekit_async')\n"
        "print(log.level, len(log.handlers))\n"
        "log.debug('hello %s', 'there')\n"
    )
    result = _run(code, REALTIMEKIT_LOG="debug")
    assert result.stdout.split() == [str(logging.DEBUG), "1"]
    assert result.stderr.count("DEBUG realtimekit_async: hello there") == 1
    assert _run(code, REALTIMEKIT_LOG="Warning ").stdout.split() == [str(logging.WARNING), "1"]
    quiet = _run(code)
    assert quiet.stdout.split() == [str(logging.NOTSET), "0"]
    assert quiet.stderr == ""


def test_realtimekit_log_leaves_an_applications_handlers_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sdk = logging.getLogger("realtimekit_async")
    monkeypatch.setattr(sdk, "level", sdk.level)
    before = list(sdk.handlers)
    configure_from_env({"REALTIMEKIT_LOG": "info"})  # pytest has given the root a handler
    assert sdk.level == logging.INFO
    assert sdk.handlers == before


def test_an_unknown_realtimekit_log_value_is_reported_and_ignored(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = logging.getLogger("realtimekit_async")
    monkeypatch.setattr(sdk, "level", logging.NOTSET)
    configure_from_env({"REALTIMEKIT_LOG": "loud"})
    assert sdk.level == logging.NOTSET
    assert "REALTIMEKIT_LOG='loud' ignored" in caplog.text


async def test_with_options_replaces_the_hooks(api: Any) -> None:
    first: list[RequestEvent] = []
    second: list[RequestEvent] = []
    api.get(f"{RECORDINGS}/{REC_ID}", payload=ok(recording_json()), repeat=True)
    async with quick_client(hooks=Hooks(on_request=first.append)) as rtk:
        await rtk.with_options(hooks=Hooks(on_request=second.append)).recordings.get(REC_ID)
        await rtk.with_options(max_retries=0).recordings.get(REC_ID)  # keeps the original's
        with pytest.raises(ValidationError, match="Hooks instance"):
            rtk.with_options(hooks=[print])  # type: ignore[arg-type]
    assert (len(first), len(second)) == (1, 1)
