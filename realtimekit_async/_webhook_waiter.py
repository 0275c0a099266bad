"""Webhook-driven waits with a polling fallback: :class:`RecordingWaiter`."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from ._closing import AsyncCloseable
from ._exceptions import RealtimeKitError, RecordingFailedError
from ._lifecycle import check_outcome, supersedes, wait_timeout_message
from ._models import Recording, RecordingStatus
from ._polling import poll, wanted_statuses
from ._validation import check_id, check_int, check_seconds
from ._webhook_models import RecordingStatusUpdate, WebhookEvent, WebhookRecording

if TYPE_CHECKING:
    from ._client import RealtimeKit

__all__ = ["RecordingSnapshot", "RecordingWaiter"]

#: What a wait returns: the webhook's view of the recording, or the API's when polled.
RecordingSnapshot: TypeAlias = Recording | WebhookRecording

_Wanted: TypeAlias = frozenset[RecordingStatus]

DEFAULT_MAX_TRACKED: Final = 10_000


@attrs.define(eq=False)
class _Tracked:
    """What is known about one recording, and who waits for it."""

    status: RecordingStatus | None = None
    latest: RecordingSnapshot | None = None
    # One future per distinct set of wanted statuses, shared by all its waiters.
    futures: dict[_Wanted, asyncio.Future[RecordingSnapshot]] = attrs.field(factory=dict)
    waiters: dict[_Wanted, int] = attrs.field(factory=dict)
    poller: asyncio.Task[None] | None = None
    heard: asyncio.Event = attrs.field(factory=asyncio.Event)

    def pending(self) -> bool:
        return any(not f.done() for f in self.futures.values())

    def idle(self) -> bool:
        return not self.futures and (self.poller is None or self.poller.done())


class RecordingWaiter(AsyncCloseable):
    """Waits for recordings to reach a status, told by webhooks, polling when they stay silent.

    Feed it verified events (:meth:`feed`, or ``webhook_handler(waiter=...)``).
    A status only moves forward, so late or repeated deliveries change nothing.
    When a waited-for recording has had no event for ``grace`` seconds, one
    poller per recording (whatever the number of waiters) calls
    ``client.recordings.get`` with pauses growing from ``poll_interval`` to
    ``max_poll_interval``, until every wait on it is settled. Waits for the same
    statuses of one recording share one future. Statuses of up to
    ``max_tracked`` recordings are remembered, so a wait that starts after its
    event arrived returns at once.

    Use it as an async context manager, or call :meth:`close`, so pollers stop.
    Like the rest of the SDK it belongs to one event loop: feed it from there.
    """

    def __init__(
        self,
        client: RealtimeKit,
        *,
        grace: float = 30.0,
        poll_interval: float = 2.0,
        max_poll_interval: float = 30.0,
        app_id: str | None = None,
        max_tracked: int = DEFAULT_MAX_TRACKED,
    ) -> None:
        self._client = client
        self._grace = check_seconds("grace", grace)
        self._poll_interval = check_seconds("poll_interval", poll_interval)
        self._max_poll_interval = check_seconds("max_poll_interval", max_poll_interval)
        check_int("max_tracked", max_tracked, 1)
        self._app_id = app_id
        self._max_tracked = max_tracked
        # Recordings nobody waits for, least recently used first (the ones to forget),
        # apart from those being waited for or polled, which are never forgotten:
        # so making room costs O(1) per event however many are tracked.
        self._idle: OrderedDict[str, _Tracked] = OrderedDict()
        self._busy: dict[str, _Tracked] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pollers(self) -> int:
        """How many recordings are being polled right now."""
        return sum(1 for t in self._tasks if not t.done())

    def status(self, recording_id: str) -> RecordingStatus | None:
        """The latest status known for a recording, or ``None``."""
        tracked = self._busy.get(recording_id) or self._idle.get(recording_id)
        return tracked.status if tracked is not None else None

    def feed(self, event: WebhookEvent) -> bool:
        """Apply a verified event; ``True`` when it moved a recording forward.

        Events of other types, and statuses older than what is known, are ignored.
        """
        if not isinstance(event, RecordingStatusUpdate):
            return False
        recording = event.recording
        tracked = self._track(recording.key)
        tracked.heard.set()
        return self._apply(tracked, recording)

    async def wait(
        self,
        recording_id: str,
        status: RecordingStatus | str | Iterable[RecordingStatus | str] = RecordingStatus.UPLOADED,
        *,
        timeout: float | None = 600.0,  # noqa: ASYNC109  # a deadline for this wait only
    ) -> RecordingSnapshot:
        """Wait until the recording reaches ``status`` (one or several); return what told us.

        Returns the event's :class:`WebhookRecording` or, when polling found
        it, the :class:`Recording`. Raises :class:`RecordingFailedError` when it
        ends ERRORED unwanted (or moves past every wanted status), the builtin
        :class:`TimeoutError` after ``timeout`` seconds (``None``: no limit), or
        a non-transient :class:`APIError` from polling. Cancelling or timing out
        one wait leaves the others on the same recording untouched.
        """
        check_id("recording_id", recording_id)
        wanted = wanted_statuses(status)
        limit = None if timeout is None else check_seconds("timeout", timeout)
        if self._closed:
            raise RealtimeKitError("the waiter is closed")
        tracked = self._track(recording_id)
        latest = tracked.latest
        if latest is not None and check_outcome(latest, latest.status, wanted):
            return latest
        future = tracked.futures.get(wanted)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            tracked.futures[wanted] = future
        tracked.waiters[wanted] = tracked.waiters.get(wanted, 0) + 1
        self._busy[recording_id] = self._idle.pop(recording_id, tracked)
        self._start_poller(recording_id, tracked)
        try:
            async with asyncio.timeout(limit):
                # shield: one waiter giving up must not cancel the shared future.
                return await asyncio.shield(future)
        except TimeoutError:
            assert limit is not None  # without a limit there is no deadline to hit
            message = wait_timeout_message(recording_id, wanted, limit, tracked.status)
            raise TimeoutError(message) from None
        finally:
            self._leave(tracked, wanted)
            self._settle(recording_id, tracked)

    async def close(self) -> None:
        """Stop polling and fail pending waits with :class:`RealtimeKitError`. Safe to call twice."""
        self._closed = True
        for tracked in (*self._busy.values(), *self._idle.values()):
            for future in tracked.futures.values():
                if not future.done():
                    future.set_exception(RealtimeKitError("the waiter was closed"))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals ------------------------------------------------------------------

    def _track(self, recording_id: str) -> _Tracked:
        tracked = self._busy.get(recording_id)
        if tracked is not None:
            return tracked
        tracked = self._idle.get(recording_id)
        if tracked is not None:
            self._idle.move_to_end(recording_id)
            return tracked
        tracked = self._idle[recording_id] = _Tracked()
        # Forget the least recently used idle recordings (never the one just added).
        while len(self._idle) + len(self._busy) > self._max_tracked and len(self._idle) > 1:
            self._idle.popitem(last=False)
        return tracked

    def _settle(self, recording_id: str, tracked: _Tracked) -> None:
        """Once nobody waits for or polls a recording, it may be forgotten again."""
        if tracked.idle() and self._busy.get(recording_id) is tracked:
            del self._busy[recording_id]
            self._idle[recording_id] = tracked

    def _apply(self, tracked: _Tracked, snapshot: RecordingSnapshot) -> bool:
        if not supersedes(tracked.status, snapshot.status):
            return False
        tracked.status = snapshot.status
        tracked.latest = snapshot
        for wanted, future in tracked.futures.items():
            if future.done():
                continue
            try:
                if check_outcome(snapshot, snapshot.status, wanted):
                    future.set_result(snapshot)
            except RecordingFailedError as exc:
                future.set_exception(exc)
        poller = tracked.poller
        if not tracked.pending() and poller is not None and poller is not asyncio.current_task():
            poller.cancel()
        return True

    def _leave(self, tracked: _Tracked, wanted: _Wanted) -> None:
        left = tracked.waiters[wanted] - 1
        if left:
            tracked.waiters[wanted] = left
            return
        del tracked.waiters[wanted]
        future = tracked.futures.pop(wanted)
        if not future.done():
            future.cancel()
        if not tracked.pending() and tracked.poller is not None:
            tracked.poller.cancel()

    def _start_poller(self, recording_id: str, tracked: _Tracked) -> None:
        if tracked.poller is not None and not tracked.poller.done():
            return
        task = asyncio.create_task(self._poll(recording_id, tracked))
        tracked.poller = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _task: self._settle(recording_id, tracked))

    async def _poll(self, recording_id: str, tracked: _Tracked) -> None:
        try:
            # Webhooks first: poll only once the recording has been silent for `grace`.
            while True:
                tracked.heard.clear()
                try:
                    async with asyncio.timeout(self._grace):
                        await tracked.heard.wait()
                except TimeoutError:
                    break

            def settled(recording: Recording) -> bool:
                self._apply(tracked, recording)
                return not tracked.pending()

            await poll(
                lambda: self._client.recordings.get(recording_id, app_id=self._app_id),
                settled,
                poll_interval=self._poll_interval,
                max_poll_interval=self._max_poll_interval,
            )
        except Exception as exc:
            # A poll that cannot succeed (unknown id, bad token): every waiter hears why.
            for future in tracked.futures.values():
                if not future.done():
                    future.set_exception(exc)
