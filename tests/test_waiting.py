"""Waiting for a status: the pure decisions, ``recordings.wait_for`` and ``RecordingWaiter``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

from realtimekit_async import (
    NotFoundError,
    RealtimeKit,
    RealtimeKitError,
    Recording,
    RecordingFailedError,
    RecordingStatus,
    RecordingWaiter,
    ValidationError,
)
from realtimekit_async import _polling as waiting
from realtimekit_async._lifecycle import Outcome, decide, supersedes
from realtimekit_async._polling import poll_delay, wanted_statuses
from realtimekit_async.webhooks import (
    GenericEvent,
    RecordingStatusUpdate,
    WebhookRecording,
    parse_event,
)

from ._support import RECORDINGS, eventually, ok, recording_json, sent
from ._webhook_support import RECORDING_ID, encode, status_update

S = RecordingStatus
URL = f"{RECORDINGS}/{RECORDING_ID}"
FAST: dict[str, Any] = {"poll_interval": 0.001, "max_poll_interval": 0.004}


def event(status: str, recording_id: str = RECORDING_ID, **fields: Any) -> RecordingStatusUpdate:
    parsed = parse_event(encode(status_update(status, recording_id, **fields)))
    assert isinstance(parsed, RecordingStatusUpdate)
    return parsed


def answer(status: str, **fields: Any) -> dict[str, Any]:
    return ok(recording_json(id=RECORDING_ID, status=status, **fields))


def queue(api: Any, *statuses: str) -> None:
    """The GET answers, in order; the last one keeps being the answer."""
    for status in statuses[:-1]:
        api.get(URL, payload=answer(status))
    # A count, not repeat=True, which would replace the answers queued before it.
    api.get(URL, payload=answer(statuses[-1]), repeat=10_000)


def gets(api: Any) -> int:
    return sum(1 for r in sent(api) if r.method == "GET")


async def polled(api: Any, count: int) -> None:
    """Return once the mock has answered ``count`` GETs (fail after ~2 s)."""
    for _ in range(400):
        if gets(api) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"only {gets(api)} polls")


async def settle() -> None:
    """Let cancelled tasks run their cleanup."""
    for _ in range(5):
        await asyncio.sleep(0)


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def drained() -> None:
    """Return once no task but the test's is left (give up after ~2 s): a cancelled
    poll in flight needs more loop turns than :func:`settle` gives it on a busy machine."""
    for _ in range(400):
        if not other_tasks():
            return
        await asyncio.sleep(0.005)


@attrs.define
class Calls:
    """How often ``client.recordings.get`` was called (counted as each call starts)."""

    count: int = 0


def count_gets(monkeypatch: pytest.MonkeyPatch, client: RealtimeKit) -> Calls:
    calls = Calls()
    real = client.recordings.get

    async def counting(*args: Any, **kwargs: Any) -> Recording:
        calls.count += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(client.recordings, "get", counting)
    return calls


# -- pure decisions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        (None, S.RECORDING, True),
        (S.INVOKED, S.RECORDING, True),
        (S.RECORDING, S.UPLOADING, True),
        (S.UPLOADING, S.UPLOADED, True),
        (S.RECORDING, S.ERRORED, True),
        (S.RECORDING, S.PAUSED, True),  # pause and resume move both ways
        (S.PAUSED, S.RECORDING, True),
        (S.UPLOADED, S.RECORDING, False),  # a late, reordered delivery
        (S.UPLOADING, S.RECORDING, False),
        (S.RECORDING, S.INVOKED, False),
        (S.UPLOADED, S.ERRORED, False),  # terminal is final
        (S.ERRORED, S.UPLOADED, False),
        (S.UPLOADED, S.UPLOADED, False),  # a repeat is not news
    ],
)
def test_supersedes(current: S | None, incoming: S, expected: bool) -> None:
    assert supersedes(current, incoming) is expected


def test_unknown_status_cannot_override_terminal() -> None:
    unknown = parse_event(encode(status_update("TRANSCODING"))).recording  # type: ignore[union-attr]
    assert supersedes(S.UPLOADING, unknown.status)
    assert not supersedes(S.UPLOADED, unknown.status)


@pytest.mark.parametrize(
    ("status", "wanted", "expected"),
    [
        (S.UPLOADED, {S.UPLOADED}, Outcome.REACHED),
        (S.RECORDING, {S.UPLOADED}, Outcome.WAIT),
        (S.UPLOADING, {S.UPLOADED}, Outcome.WAIT),
        (S.ERRORED, {S.UPLOADED}, Outcome.FAILED),
        (S.ERRORED, {S.UPLOADED, S.ERRORED}, Outcome.REACHED),
        (S.UPLOADED, {S.ERRORED}, Outcome.UNREACHABLE),
        (S.UPLOADING, {S.RECORDING}, Outcome.UNREACHABLE),
        (S.RECORDING, {S.PAUSED}, Outcome.WAIT),
        (S.INVOKED, {S.RECORDING, S.UPLOADED}, Outcome.WAIT),
    ],
)
def test_decide(status: S, wanted: set[S], expected: Outcome) -> None:
    assert decide(status, frozenset(wanted)) is expected


def test_poll_delay_grows_to_the_cap() -> None:
    delays = [poll_delay(n, 1.0, 10.0) for n in range(10)]
    assert delays[0] == 1.0
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert delays[-1] == 10.0
    assert poll_delay(10_000, 1.0, 10.0) == 10.0
    assert poll_delay(3, 5.0, 1.0) == 5.0  # a cap below the interval is the interval


def test_wanted_statuses() -> None:
    assert wanted_statuses("UPLOADED") == {S.UPLOADED}
    assert wanted_statuses([S.UPLOADED, "ERRORED"]) == {S.UPLOADED, S.ERRORED}
    with pytest.raises(ValidationError, match="status"):
        wanted_statuses("DONE")
    with pytest.raises(ValidationError, match="status"):
        wanted_statuses([])


# -- recordings.wait_for ----------------------------------------------------------------


async def test_wait_for_polls_until_uploaded(api: Any, client: RealtimeKit) -> None:
    queue(api, "INVOKED", "RECORDING", "UPLOADING", "UPLOADED")
    recording = await client.recordings.wait_for(RECORDING_ID, timeout=5, **FAST)
    assert isinstance(recording, Recording)
    assert recording.id == RECORDING_ID
    assert recording.status is S.UPLOADED
    requests = sent(api)
    assert [(r.method, r.path) for r in requests] == [
        ("GET", f"/client/v4/accounts/acc123/realtime/kit/app456/recordings/{RECORDING_ID}")
    ] * 4
    assert all(r.headers["Authorization"] == "Bearer test-token-5f2b8c" for r in requests)


async def test_wait_for_goes_through_recordings_get(
    api: Any, client: RealtimeKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Polls use the public get(), so they share the client's limiter and retries.
    queue(api, "RECORDING", "UPLOADED")
    calls: list[tuple[str, str | None]] = []
    real_get = client.recordings.get

    async def spy(recording_id: str, *, app_id: str | None = None) -> Recording:
        calls.append((recording_id, app_id))
        return await real_get(recording_id, app_id=app_id)

    monkeypatch.setattr(client.recordings, "get", spy)
    await client.recordings.wait_for(RECORDING_ID, timeout=5, app_id="app456", **FAST)
    assert calls == [(RECORDING_ID, "app456")] * 2


async def test_wait_for_backs_off(
    api: Any, client: RealtimeKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue(api, "RECORDING", "RECORDING", "RECORDING", "RECORDING", "UPLOADED")
    pauses: list[float] = []
    real = waiting.poll_delay

    def spy(attempt: int, interval: float, cap: float, factor: float = 1.5) -> float:
        pauses.append(real(attempt, interval, cap, factor))
        return pauses[-1]

    monkeypatch.setattr(waiting, "poll_delay", spy)
    await client.recordings.wait_for(
        RECORDING_ID, timeout=5, poll_interval=0.001, max_poll_interval=0.003
    )
    assert pauses == pytest.approx([0.001, 0.0015, 0.00225, 0.003])


async def test_wait_for_accepts_several_statuses(api: Any, client: RealtimeKit) -> None:
    queue(api, "RECORDING", "ERRORED")
    recording = await client.recordings.wait_for(
        RECORDING_ID, {S.UPLOADED, "ERRORED"}, timeout=5, **FAST
    )
    assert recording.status is S.ERRORED


async def test_wait_for_errored_raises(api: Any, client: RealtimeKit) -> None:
    queue(api, "RECORDING", "ERRORED")
    with pytest.raises(RecordingFailedError, match="ERRORED") as info:
        await client.recordings.wait_for(RECORDING_ID, timeout=5, **FAST)
    assert isinstance(info.value.recording, Recording)
    assert info.value.recording.status is S.ERRORED
    assert gets(api) == 2


async def test_wait_for_a_passed_status_raises(api: Any, client: RealtimeKit) -> None:
    queue(api, "UPLOADED")
    with pytest.raises(RecordingFailedError, match="no longer"):
        await client.recordings.wait_for(RECORDING_ID, S.RECORDING, timeout=5, **FAST)


async def test_wait_for_times_out(api: Any, client: RealtimeKit) -> None:
    queue(api, "RECORDING")
    with pytest.raises(TimeoutError, match="last status: RECORDING") as info:
        await client.recordings.wait_for(RECORDING_ID, timeout=0.05, **FAST)
    assert type(info.value) is TimeoutError
    assert gets(api) >= 2
    await settle()
    assert not other_tasks()


async def test_wait_for_keeps_polling_through_transient_errors(
    api: Any, client: RealtimeKit
) -> None:
    # Three 503s exhaust the client's own retries (2); the wait just polls again.
    api.get(URL, status=503, payload={"success": False, "error": {"code": 1, "message": "x"}})
    api.get(URL, status=503, payload={"success": False, "error": {"code": 1, "message": "x"}})
    api.get(URL, status=503, payload={"success": False, "error": {"code": 1, "message": "x"}})
    api.get(URL, payload=answer("UPLOADED"))
    recording = await client.recordings.wait_for(RECORDING_ID, timeout=5, **FAST)
    assert recording.status is S.UPLOADED
    assert gets(api) == 4


async def test_wait_for_not_found_is_raised(api: Any, client: RealtimeKit) -> None:
    api.get(URL, status=404, payload={"success": False, "error": {"code": 404, "message": "no"}})
    with pytest.raises(NotFoundError):
        await client.recordings.wait_for(RECORDING_ID, timeout=5, **FAST)
    assert gets(api) == 1


async def test_wait_for_cancellation_leaves_nothing_running(
    api: Any, client: RealtimeKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue(api, "RECORDING")
    calls = count_gets(monkeypatch, client)
    task = asyncio.create_task(client.recordings.wait_for(RECORDING_ID, timeout=5, **FAST))
    await polled(api, 2)
    at_cancel = calls.count
    assert at_cancel >= 2  # the counter sees the polls
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()
    # No poll started after cancellation, and no task is left that could start one.
    assert calls.count == at_cancel
    assert not other_tasks()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": float("nan")}, "poll_interval"),
        ({"max_poll_interval": -2}, "max_poll_interval"),
        ({"status": "DONE"}, "status"),
        ({"status": []}, "status"),
        ({"recording_id": ""}, "recording_id"),
    ],
)
async def test_wait_for_validates_before_any_request(
    api: Any, client: RealtimeKit, kwargs: dict[str, Any], field: str
) -> None:
    queue(api, "UPLOADED")  # so a request, if one were sent, would be seen
    args: dict[str, Any] = {"recording_id": RECORDING_ID, "timeout": 5.0, **kwargs}
    with pytest.raises(ValidationError) as info:
        await client.recordings.wait_for(**args)
    assert info.value.field == field
    assert sent(api) == []


# -- RecordingWaiter --------------------------------------------------------------------


@pytest.fixture
async def waiter(client: RealtimeKit) -> AsyncIterator[RecordingWaiter]:
    """A waiter that trusts webhooks for a long while (polling would fail: no mock answers)."""
    async with RecordingWaiter(client, grace=30, **FAST) as w:
        yield w


@pytest.fixture
async def polling_waiter(client: RealtimeKit) -> AsyncIterator[RecordingWaiter]:
    """A waiter that falls back to polling almost at once."""
    async with RecordingWaiter(client, grace=0.01, **FAST) as w:
        yield w


async def test_webhook_resolves_a_wait(api: Any, waiter: RecordingWaiter) -> None:
    queue(api, "UPLOADING")  # a poll, if one were made, would be answered and seen
    task = asyncio.create_task(waiter.wait(RECORDING_ID, timeout=5))
    await settle()
    assert waiter.feed(event("RECORDING"))
    await settle()
    assert not task.done()
    assert waiter.feed(event("UPLOADED"))
    result = await task
    assert isinstance(result, WebhookRecording)
    assert result.download_url == f"https://storage.example/{RECORDING_ID}.mp4?X-Signature=abc"
    assert result.file_size == 2044680
    assert sent(api) == []  # webhooks alone, no polling


async def test_event_before_the_wait_returns_at_once(api: Any, waiter: RecordingWaiter) -> None:
    queue(api, "UPLOADING")  # a poll, if one were made, would be answered and seen
    waiter.feed(event("UPLOADED"))
    result = await waiter.wait(RECORDING_ID, timeout=5)
    assert result.status is S.UPLOADED
    assert sent(api) == []
    assert waiter.pollers == 0


async def test_reordered_old_status_is_ignored(waiter: RecordingWaiter) -> None:
    assert waiter.feed(event("UPLOADED"))
    assert not waiter.feed(event("RECORDING"))  # late delivery of an earlier state
    assert not waiter.feed(event("UPLOADED"))  # a repeat
    assert waiter.status(RECORDING_ID) is S.UPLOADED


async def test_other_events_are_ignored(waiter: RecordingWaiter) -> None:
    assert not waiter.feed(GenericEvent("meeting.started", {"event": "meeting.started"}))


async def test_errored_fails_waits_unless_wanted(waiter: RecordingWaiter) -> None:
    plain = asyncio.create_task(waiter.wait(RECORDING_ID, timeout=5))
    either = asyncio.create_task(waiter.wait(RECORDING_ID, {S.UPLOADED, S.ERRORED}, timeout=5))
    await settle()
    waiter.feed(event("ERRORED"))
    with pytest.raises(RecordingFailedError) as info:
        await plain
    assert isinstance(info.value.recording, WebhookRecording)
    assert (await either).status is S.ERRORED
    with pytest.raises(RecordingFailedError):  # later waits fail at once too
        await waiter.wait(RECORDING_ID, timeout=5)


async def test_dropped_webhook_falls_back_to_polling(
    api: Any, polling_waiter: RecordingWaiter
) -> None:
    queue(api, "RECORDING", "UPLOADING", "UPLOADED")
    result = await polling_waiter.wait(RECORDING_ID, timeout=5)
    assert isinstance(result, Recording)
    assert result.status is S.UPLOADED
    assert gets(api) == 3
    await settle()
    assert polling_waiter.pollers == 0


async def test_events_postpone_polling(
    api: Any, client: RealtimeKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue(api, "UPLOADING")  # any premature poll would be answered, and counted
    calls = count_gets(monkeypatch, client)  # counted as a poll starts, not when it lands
    loop = asyncio.get_running_loop()
    async with RecordingWaiter(client, grace=0.5, **FAST) as w:
        task = asyncio.create_task(w.wait(RECORDING_ID, timeout=5))
        # Events keep coming for longer than the grace period, each a tenth of it
        # after the last (a wide margin for a loaded machine): no poll.
        fed = [loop.time()]
        for status in ("RECORDING", "PAUSED", "RECORDING") * 3 + ("RECORDING", "UPLOADING"):
            await asyncio.sleep(0.05)
            w.feed(event(status))
            fed.append(loop.time())
        assert fed[-1] - fed[0] > 0.5
        gaps = [later - earlier for earlier, later in itertools.pairwise(fed)]
        assert max(gaps) < 0.5, f"the loop stalled for {max(gaps):.2f} s: nothing to judge"
        assert calls.count == 0
        assert gets(api) == 0
        api.clear()
        queue(api, "UPLOADED")  # then the webhooks stop: polling takes over
        result = await task
        assert isinstance(result, Recording)
        assert result.status is S.UPLOADED
        assert gets(api) == 1


async def test_concurrent_waiters_share_one_poller(
    api: Any, polling_waiter: RecordingWaiter
) -> None:
    queue(api, "RECORDING", "RECORDING", "UPLOADED")
    results = await asyncio.gather(
        *(polling_waiter.wait(RECORDING_ID, timeout=5) for _ in range(25))
    )
    assert gets(api) == 3  # one poller, not 25
    assert all(r is results[0] for r in results)  # one shared resolution


async def test_different_wanted_sets_share_the_poller(
    api: Any, polling_waiter: RecordingWaiter
) -> None:
    queue(api, "RECORDING", "UPLOADING", "UPLOADED")
    recording, uploading, uploaded = await asyncio.gather(
        polling_waiter.wait(RECORDING_ID, S.RECORDING, timeout=5),
        polling_waiter.wait(RECORDING_ID, S.UPLOADING, timeout=5),
        polling_waiter.wait(RECORDING_ID, timeout=5),
    )
    assert (recording.status, uploading.status, uploaded.status) == (
        S.RECORDING,
        S.UPLOADING,
        S.UPLOADED,
    )
    assert gets(api) == 3


async def test_poll_error_reaches_every_waiter(api: Any, polling_waiter: RecordingWaiter) -> None:
    api.get(URL, status=404, payload={"success": False, "error": {"code": 404, "message": "no"}})
    results = await asyncio.gather(
        polling_waiter.wait(RECORDING_ID, timeout=5),
        polling_waiter.wait(RECORDING_ID, timeout=5),
        return_exceptions=True,
    )
    assert all(isinstance(r, NotFoundError) for r in results)
    assert gets(api) == 1


async def test_timeout_of_one_waiter_leaves_the_others(waiter: RecordingWaiter) -> None:
    patient = asyncio.create_task(waiter.wait(RECORDING_ID, timeout=5))
    with pytest.raises(TimeoutError, match="did not become UPLOADED"):
        await waiter.wait(RECORDING_ID, timeout=0.02)
    assert not patient.done()
    waiter.feed(event("UPLOADED"))
    assert (await patient).status is S.UPLOADED


async def test_cancelling_one_waiter_leaves_the_others(waiter: RecordingWaiter) -> None:
    first = asyncio.create_task(waiter.wait(RECORDING_ID, timeout=5))
    second = asyncio.create_task(waiter.wait(RECORDING_ID, timeout=5))
    await settle()
    first.cancel()
    await settle()
    assert first.cancelled()
    assert not second.done()
    waiter.feed(event("UPLOADED"))
    assert (await second).status is S.UPLOADED
    await settle()
    assert waiter.pollers == 0
    assert not other_tasks()


async def test_last_waiter_leaving_stops_the_poller(
    api: Any, client: RealtimeKit, polling_waiter: RecordingWaiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue(api, "RECORDING")
    calls = count_gets(monkeypatch, client)
    task = asyncio.create_task(polling_waiter.wait(RECORDING_ID, timeout=5))
    await polled(api, 2)
    assert polling_waiter.pollers == 1
    assert calls.count >= 2  # the counter sees the polls
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task  # the last waiter has now left (a poll may start until it has)
    left_at = calls.count
    await drained()
    assert polling_waiter.pollers == 0
    # No poll started after the last waiter left, and no task is left that could start one.
    assert calls.count == left_at
    assert not other_tasks()


async def test_last_waiter_leaving_during_grace_stops_the_poller(
    waiter: RecordingWaiter,
) -> None:
    task = asyncio.create_task(waiter.wait(RECORDING_ID, timeout=5))
    await settle()
    assert waiter.pollers == 1  # waiting out the grace period
    task.cancel()
    await settle()
    assert waiter.pollers == 0
    assert not other_tasks()


async def test_close_fails_pending_waits(client: RealtimeKit) -> None:
    waiter = RecordingWaiter(client, grace=30)
    task = asyncio.create_task(waiter.wait(RECORDING_ID, timeout=5))
    await settle()
    assert waiter.pollers == 1
    await waiter.close()
    with pytest.raises(RealtimeKitError, match="closed"):
        await task
    assert waiter.pollers == 0
    with pytest.raises(RealtimeKitError, match="closed"):
        await waiter.wait(RECORDING_ID)


async def test_memory_of_idle_recordings_is_bounded(client: RealtimeKit) -> None:
    async with RecordingWaiter(client, max_tracked=2) as waiter:
        for rid in ("a", "b", "c"):
            waiter.feed(event("UPLOADED", rid))
        assert waiter.status("a") is None
        assert waiter.status("b") is waiter.status("c") is S.UPLOADED


async def test_waiter_validates_arguments(client: RealtimeKit, api: Any) -> None:
    queue(api, "UPLOADED")
    bad: list[dict[str, Any]] = [{"grace": 0}, {"poll_interval": -1}, {"max_tracked": 0}]
    for kwargs in bad:
        with pytest.raises(ValidationError):
            RecordingWaiter(client, **kwargs)
    async with RecordingWaiter(client) as waiter:
        with pytest.raises(ValidationError):
            await waiter.wait(RECORDING_ID, "DONE")
        with pytest.raises(ValidationError):
            await waiter.wait(RECORDING_ID, timeout=0)
        with pytest.raises(ValidationError):
            await waiter.wait("")
        assert waiter.pollers == 0
    assert sent(api) == []


async def test_waited_for_recordings_are_never_forgotten_and_idle_ones_go_oldest_first(
    client: RealtimeKit,
) -> None:
    async with RecordingWaiter(client, max_tracked=3, grace=60) as waiter:
        waits = [asyncio.create_task(waiter.wait(rid, timeout=None)) for rid in ("w1", "w2")]
        await asyncio.sleep(0)
        for rid in ("a", "b", "c", "d"):
            waiter.feed(event("RECORDING", rid))
        # Both waited-for recordings stay; the one idle slot holds the newest.
        assert [waiter.status(r) for r in ("a", "b", "c", "d")] == [None, None, None, S.RECORDING]
        waiter.feed(event("UPLOADED", "w1"))
        assert (await waits[0]).status == S.UPLOADED
        # Its poller winds down (w2's stays); the poller's done-callbacks then run on
        # the next turn of the loop, making w1 idle, used after d.
        await eventually(lambda: waiter.pollers == 1)
        await asyncio.sleep(0)
        waiter.feed(event("RECORDING", "e"))
        assert waiter.status("d") is None
        assert waiter.status("w1") is S.UPLOADED
        assert waiter.status("e") is S.RECORDING
        waiter.feed(event("RECORDING", "f"))  # w1, idle and the oldest, goes now
        assert [waiter.status(r) for r in ("w1", "e", "f")] == [None, S.RECORDING, S.RECORDING]
        waits[1].cancel()
        await asyncio.gather(waits[1], return_exceptions=True)


async def test_feeding_a_full_waiter_looks_at_a_bounded_number_of_recordings(
    client: RealtimeKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Item 15 of issue 11: each event used to scan every tracked recording for
    # idle ones (O(n)); the figures are in benchmarks (make bench, "waiter").
    from realtimekit_async import _webhook_waiter as _waiter

    looked = itertools.count()
    real_idle = _waiter._Tracked.idle

    def counting_idle(self: Any) -> bool:
        next(looked)
        return real_idle(self)

    monkeypatch.setattr(_waiter._Tracked, "idle", counting_idle)
    async with RecordingWaiter(client, max_tracked=1000) as waiter:
        for i in range(1000):
            waiter.feed(event("UPLOADED", f"fill-{i}"))
        before = next(looked)
        for i in range(1000):
            waiter.feed(event("UPLOADED", f"more-{i}"))
        assert next(looked) - before - 1 <= 10  # was about 1,000 per event
        assert waiter.status("fill-999") is None
        assert waiter.status("more-999") is S.UPLOADED
