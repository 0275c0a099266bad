"""The async client: one aiohttp session, one request path, retries and rate limiting.

Decisions (URLs, error mapping, whether and when to retry) come from the pure
functions in ``_sansio``; this module only does the I/O around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import platform
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Self

import aiohttp
import attrs
from yarl import URL

from ._call import CallSettings, merge_body, merge_query
from ._closing import AsyncCloseable
from ._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_TIMEOUT,
    ClientOptions,
    resolve_options,
    to_retry_policy,
    to_timeout,
)
from ._exceptions import (
    APIError,
    APIResponseTooLargeError,
    APITimeoutError,
    RealtimeKitError,
    ValidationError,
)
from ._hooks import Hooks, RequestEvent, ResponseEvent, RetryEvent, run_hooks
from ._logging import configure_from_env, logger
from ._otel import AttemptSpan, Tracing, make_tracing
from ._policies import RetryPolicy
from ._ratelimit import (
    DEFAULT_RATE_LIMITS,
    RateBudget,
    RateLimit,
    RateLimiter,
    RateLimits,
    to_rate_limits,
)
from ._recordings import Recordings
from ._sansio import (
    Failure,
    encode_json,
    possibly_processed,
    recordings_url,
    retry_delay,
    status_error,
    unwrap,
)
from ._transport import Answer, Request, TransportFailure, read_body, send
from ._validation import check_id, check_int
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["RealtimeKit", "Sent", "read_body"]

#: The part of every route template before ``/recordings``.
API_ROUTE: Final = "/accounts/{account_id}/realtime/kit/{app_id}"

USER_AGENT: Final = (
    f"realtimekit_async/{__version__} (Python {platform.python_version()}; "
    f"aiohttp {aiohttp.__version__})"
)


class _Transport:
    """The I/O shared by a client and its ``with_options`` copies.

    Owns (or borrows) the session, the rate limiter and the concurrency bound.
    aiohttp counts waiting for a pooled connection against the connect timeout,
    so concurrency is bounded here with a semaphore and the pool is unlimited.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        rate_limit: RateLimits | None,
        max_concurrency: int,
        tracing: Tracing,
    ) -> None:
        self._session = session
        self.tracing = tracing
        self._owns_session = session is None
        self._closed = False
        self.limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        self._gate = asyncio.Lock()
        self.slots = asyncio.Semaphore(max_concurrency)
        self.last_date: tuple[str | None, datetime] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use inside the running loop."""
        if self._closed:
            raise RealtimeKitError("the client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    def check_loop(self) -> None:
        """Raise :class:`RealtimeKitError` when used from another event loop than the first.

        The session, the rate-limit gate and the semaphore all belong to that loop.
        """
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RealtimeKitError(
                "this client was first used in another event loop (each asyncio.run() "
                "starts a new one): create the client inside the coroutine that uses it, "
                "with `async with RealtimeKit() as client:`"
            )

    async def pace(self, method: str, path: str, *, possibly_applied: bool) -> int:
        """Wait for this attempt's turn under the rate limits; return its ticket.

        Raises :class:`RateLimitError` at once while a long 429 block lasts, and
        :class:`RealtimeKitError` in another event loop than the first one used.
        """
        self.check_loop()
        if self.limiter is None:
            return 0
        self._fail_fast(method, path, possibly_applied)
        # One request at a time waits at the gate and asks again after each sleep,
        # so a pause always reflects the answers that came in during the one before.
        waited, reason = 0.0, ""
        async with self._gate:
            while True:
                self._fail_fast(method, path, possibly_applied)
                now = time.monotonic()
                delay, why = self.limiter.delay(now)
                if delay <= 0:
                    break
                reason = why
                await asyncio.sleep(delay)
                waited += delay
            ticket = self.limiter.record(now)
        if waited:
            logger.debug("%s %s: paused %.3fs for rate limits (%s)", method, path, waited, reason)
        return ticket

    def _fail_fast(self, method: str, path: str, possibly_applied: bool) -> None:
        """Raise the block's :class:`RateLimitError` if a long 429 block is in force."""
        assert self.limiter is not None
        now = time.monotonic()
        block = self.limiter.blocked(now)
        if block is not None:
            error = status_error(429, block.headers, block.body, method=method, path=path)
            error.retry_after = block.until - now
            error.possibly_applied = possibly_applied
            raise error

    def observe(self, ticket: int, status: int, headers: Any, body: bytes, max_wait: float) -> None:
        """Feed an answer's rate-limit headers (and a 429's wait) to the limiter."""
        if self.limiter is not None:
            now = time.monotonic()
            self.limiter.observe(ticket, status, headers, body, now=now, max_wait=max_wait)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a concurrency slot.

        Raises :class:`RealtimeKitError` in another event loop than the first
        one used (see :meth:`check_loop`).
        """
        self.check_loop()
        async with self.slots:
            yield

    async def close(self) -> None:
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()


class RealtimeKit(AsyncCloseable):
    """Async client for the RealtimeKit Recordings API.

    Use it as an async context manager (or call :meth:`close`) so its aiohttp
    session is closed. Arguments left out come from ``CLOUDFLARE_API_TOKEN``,
    ``CLOUDFLARE_ACCOUNT_ID``, ``REALTIMEKIT_APP_ID`` and ``REALTIMEKIT_BASE_URL``.
    Raises :class:`ValidationError` when no token or account id can be found.

    A ``session`` passed in is used for every request and left open on close.
    ``rate_limit`` takes :class:`RateLimits` (layers, header pacing), one
    :class:`RateLimit`, or ``None`` to turn client-side rate limiting off.
    ``max_retries`` is a count, or a :class:`RetryPolicy` to also set the backoff. An answer whose
    body (inflated) exceeds ``max_response_size`` bytes (default 8 MiB) raises
    :class:`APIResponseTooLargeError`.

    ``timeout`` is each call's deadline, every retry and backoff included (a
    ``ClientTimeout`` also sets per-socket limits; its ``total`` is the
    deadline). ``hooks`` observe every attempt (:class:`Hooks`); ``tracing=True``
    (or an OpenTelemetry ``TracerProvider``) makes a span per attempt, with the
    ``otel`` extra installed.
    """

    recordings: Recordings

    def __init__(
        self,
        *,
        api_token: str | None = None,
        account_id: str | None = None,
        app_id: str | None = None,
        base_url: str | URL | None = None,
        timeout: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_retries: int | RetryPolicy = 2,
        rate_limit: RateLimits | RateLimit | None = DEFAULT_RATE_LIMITS,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        session: aiohttp.ClientSession | None = None,
        hooks: Hooks | None = None,
        tracing: bool | TracerProvider = False,
    ) -> None:
        configure_from_env()
        check_int("max_concurrency", max_concurrency, 1)
        _check_hooks(hooks)
        options = resolve_options(
            api_token=api_token,
            account_id=account_id,
            app_id=app_id,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_response_size=max_response_size,
        )
        limits = to_rate_limits(rate_limit)
        transport = _Transport(session, limits, max_concurrency, make_tracing(tracing))
        self._init(options, transport, hooks or Hooks(), owner=True)

    def _init(
        self, options: ClientOptions, transport: _Transport, hooks: Hooks, *, owner: bool
    ) -> None:
        self._options = options
        self._transport = transport
        self._hooks = hooks
        self._tracing = transport.tracing
        self._owner = owner
        self.recordings = Recordings(self)

    @property
    def options(self) -> ClientOptions:
        """The settings in force (the token is kept out of its repr)."""
        return self._options

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session all requests go through (created on first use)."""
        return self._transport.session

    @property
    def rate_budget(self) -> RateBudget:
        """The tightest rate-limit budget known now: the server's, else the client's own."""
        limiter = self._transport.limiter
        if limiter is None:
            return RateBudget(None, None, None, "none")
        return limiter.budget(time.monotonic())

    @property
    def last_server_date(self) -> tuple[str | None, datetime] | None:
        """The ``Date`` header of the latest API answer and when (local UTC) it arrived.

        None before any answer. For judging the server's times (such as a download
        URL's expiry) on the server's clock rather than a possibly skewed local one.
        """
        return self._transport.last_date

    def with_options(
        self,
        *,
        app_id: str | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | RetryPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> RealtimeKit:
        """A copy of this client with some settings changed, sharing its session and limits.

        ``hooks`` replace the original's. Closing the copy does not close the
        session; closing the original does.
        """
        _check_hooks(hooks)
        changes: dict[str, Any] = {}
        if app_id is not None:
            changes["app_id"] = check_id("app_id", app_id)
        if timeout is not None:
            changes["timeout"] = to_timeout(timeout)
        if max_retries is not None:
            changes["retry"] = (
                max_retries
                if isinstance(max_retries, RetryPolicy)
                else attrs.evolve(
                    self._options.retry, max_retries=to_retry_policy(max_retries).max_retries
                )
            )
        clone = copy.copy(self)  # of this class, without running __init__ again
        clone._init(
            attrs.evolve(self._options, **changes),
            self._transport,
            self._hooks if hooks is None else hooks,
            owner=False,
        )
        return clone

    async def __aenter__(self) -> Self:
        _ = self._transport.session  # create it now, inside the running loop
        return self

    async def close(self) -> None:
        """Close the session if this client created it. Safe to call twice."""
        if self._owner:
            await self._transport.close()

    def __repr__(self) -> str:
        o = self._options
        return (
            f"RealtimeKit(account_id={o.account_id!r}, app_id={o.app_id!r}, "
            f"base_url={str(o.base_url)!r})"
        )

    def _url(self, app_id: str | None, segments: Sequence[str]) -> URL:
        app = app_id if app_id is not None else self._options.app_id
        if app is None:
            raise ValidationError("app_id", "missing: pass app_id= or set REALTIMEKIT_APP_ID")
        check_id("app_id", app)
        return recordings_url(self._options.base_url, self._options.account_id, app, *segments)

    async def _request(
        self,
        method: str,
        segments: Sequence[str] = (),
        *,
        route: str,
        call: CallSettings,
        app_id: str | None = None,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        idempotent: bool = True,
    ) -> Sent:
        """Send one API call, retrying as ``call`` allows within its deadline.

        Returns the answer with its decoded envelope. Raises
        :class:`APIStatusError` subclasses, :class:`APIConnectionError`,
        :class:`APITimeoutError` (also when the deadline passes) or
        :class:`APIResponseValidationError` (:class:`APIResponseTooLargeError`
        for an answer past the bound).
        """
        request = self._prepare(method, segments, route, call, app_id, query, body, idempotent)
        loop = asyncio.get_running_loop()
        started = loop.time()
        total = call.timeout.total
        deadline = None if total is None else started + total
        progress = _Progress(started=started, deadline=deadline)
        try:
            async with asyncio.timeout_at(deadline) as scope:
                return await self._attempts(request, call, progress)
        except TimeoutError:
            if not scope.expired():
                raise
            raise progress.deadline_error(request, total) from None

    def _prepare(
        self,
        method: str,
        segments: Sequence[str],
        route: str,
        call: CallSettings,
        app_id: str | None,
        query: Sequence[tuple[str, str]],
        body: Any,
        idempotent: bool,
    ) -> Request:
        """The request to send, every option merged; raises :class:`ValidationError`."""
        url = self._url(app_id, segments)
        body = merge_body(body, call.extra_body, method=method)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if call.extra_headers:  # last, replacing ours whatever their case; never credentials
            given = {name.lower() for name in call.extra_headers}
            headers = {k: v for k, v in headers.items() if k.lower() not in given}
            headers.update(call.extra_headers)
        headers["Authorization"] = f"Bearer {self._options.api_token}"
        return Request(
            method=method,
            url=url,
            route=f"{API_ROUTE}{route}",
            headers=headers,
            query=merge_query(query, call.extra_query),
            body=None if body is None else encode_json(body),
            idempotent=idempotent,
        )

    async def _attempts(self, request: Request, call: CallSettings, progress: _Progress) -> Sent:
        """The retry loop: each attempt's outcome goes to the pure retry decision."""
        secrets = (self._options.api_token,)  # a server may echo them back in an error body
        while True:
            attempt = progress.attempt
            with self._tracing.attempt(
                method=request.method, url=request.url, route=request.route, attempt=attempt
            ) as span:
                outcome = await self._attempt(request, call, progress, span)
                status, failure, headers = outcome_facts(outcome)
                delay = retry_delay(
                    call.retry,
                    attempt,
                    idempotent=request.idempotent,
                    status=status,
                    failure=failure,
                    headers=headers,
                    jitter=random.random(),
                )
                if delay is not None:
                    span.retrying(delay)
            if delay is None:
                return progress.finish(request, outcome, secrets)
            progress.check_backoff(request, outcome, delay, secrets)
            progress.possibly_applied |= possibly_processed(status=status, failure=failure)
            await self._retrying(request, outcome, attempt, delay)
            await asyncio.sleep(delay)
            progress.attempt += 1

    async def _attempt(
        self, request: Request, call: CallSettings, progress: _Progress, span: AttemptSpan
    ) -> Answer | TransportFailure:
        """Send one attempt through the limiter and report its outcome to the observers."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome: Answer | TransportFailure
        # Before send: wait for this attempt's turn under the rate limits (or fail
        # fast during a long 429 block), then for a concurrency slot.
        ticket = await self._transport.pace(
            request.method, request.path, possibly_applied=progress.possibly_applied
        )
        try:
            async with self._transport.slot():
                if self._hooks.on_request:
                    await run_hooks(
                        self._hooks.on_request, _request_event(request, progress.attempt)
                    )
                outcome = await send(
                    self._transport.session,
                    request,
                    timeout=call.timeout,
                    max_response_size=self._options.max_response_size,
                )
        except TransportFailure as exc:
            outcome = exc
        except APIResponseTooLargeError as exc:
            # A success too large to read was still carried out (a started recording).
            exc.possibly_applied = progress.possibly_applied or 200 <= exc.status < 300
            raise  # reading it again would cost as much: not retried
        # After an answer (or a failure): every observer sees it before any decision.
        if isinstance(outcome, Answer):
            self._transport.observe(
                ticket, outcome.status, outcome.headers, outcome.body, call.retry.max_server_delay
            )
            self._transport.last_date = (outcome.headers.get("Date"), datetime.now(UTC))
            span.answered(outcome.status)
        else:
            span.failed(type(outcome.classified.error).__name__)
        await self._observe(request, progress.attempt, outcome, loop.time() - started)
        return outcome

    async def _observe(
        self,
        request: Request,
        attempt: int,
        outcome: Answer | TransportFailure,
        elapsed: float,
    ) -> None:
        """Log the attempt (one DEBUG record with structured fields) and run response hooks."""
        hooks = self._hooks.on_response
        debug = logger.isEnabledFor(logging.DEBUG)
        if not (hooks or debug):
            return  # the hot path of a long listing: build nothing nobody reads
        event = _response_event(request, attempt, outcome, elapsed)
        if debug:
            logger.debug(
                "%s %s -> %s in %.3fs (retry %d)",
                event.method,
                event.path,
                event.status if event.status is not None else event.error,
                elapsed,
                attempt,
                extra=_log_fields(event),
            )
        await run_hooks(hooks, event)

    async def _retrying(
        self, request: Request, outcome: Answer | TransportFailure, attempt: int, delay: float
    ) -> None:
        """Tell the logs, the span and the retry hooks that a backoff starts."""
        status, _, _ = outcome_facts(outcome)
        error = None if isinstance(outcome, Answer) else outcome.classified.kind
        event = RetryEvent(
            method=request.method,
            path=request.path,
            route=request.route,
            attempt=attempt,
            delay=delay,
            status=status,
            error=error,
        )
        logger.info(
            "%s %s: retrying in %.3fs after %s (retry %d)",
            request.method,
            request.path,
            delay,
            status if status is not None else error,
            attempt + 1,
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "attempt": attempt,
                "delay": delay,
            },
        )
        await run_hooks(self._hooks.on_retry, event)


def _check_hooks(hooks: object) -> None:
    if hooks is not None and not isinstance(hooks, Hooks):
        raise ValidationError("hooks", f"must be a Hooks instance, got {type(hooks).__name__}")


def outcome_facts(
    outcome: Answer | TransportFailure,
) -> tuple[int | None, Failure | None, Mapping[str, str] | None]:
    """``(status, failure, headers)`` of an attempt's outcome, as the retry decision takes them."""
    if isinstance(outcome, Answer):
        return outcome.status, None, outcome.headers
    return None, outcome.classified.failure, None


def _request_event(request: Request, attempt: int) -> RequestEvent:
    return RequestEvent(
        method=request.method, path=request.path, route=request.route, attempt=attempt
    )


def _response_event(
    request: Request, attempt: int, outcome: Answer | TransportFailure, elapsed: float
) -> ResponseEvent:
    if isinstance(outcome, Answer):
        status, request_id, error = outcome.status, outcome.request_id, None
    else:
        status, request_id, error = None, None, outcome.classified.failure.value
    return ResponseEvent(
        method=request.method,
        path=request.path,
        route=request.route,
        attempt=attempt,
        status=status,
        elapsed=elapsed,
        request_id=request_id,
        error=error,
    )


def _log_fields(event: ResponseEvent) -> dict[str, Any]:
    return {
        "method": event.method,
        "path": event.path,
        "status": event.status,
        "attempt": event.attempt,
        "elapsed": event.elapsed,
        "request_id": event.request_id,
    }


@attrs.frozen
class Sent:
    """A call's successful answer with its decoded envelope and how it was obtained."""

    method: str
    path: str
    answer: Answer
    doc: dict[str, Any] = attrs.field(repr=False)
    retries_taken: int
    elapsed: float


@attrs.define
class _Progress:
    """What one call has been through so far: attempts, side effects, its deadline."""

    started: float
    deadline: float | None
    attempt: int = 0
    #: An earlier attempt may have been carried out by the server.
    possibly_applied: bool = False

    def finish(
        self, request: Request, outcome: Answer | TransportFailure, secrets: Sequence[str]
    ) -> Sent:
        """The call's result once no retry follows: a :class:`Sent`, or the error raised."""
        method, path = request.method, request.path
        try:
            if not isinstance(outcome, Answer):
                raise outcome.classified.error
            doc = unwrap(
                outcome.status,
                outcome.headers,
                outcome.body,
                method=method,
                path=path,
                secrets=secrets,
            )
        except APIError as exc:
            exc.possibly_applied = self.possibly_applied
            raise
        elapsed = asyncio.get_running_loop().time() - self.started
        return Sent(
            method=method,
            path=path,
            answer=outcome,
            doc=doc,
            retries_taken=self.attempt,
            elapsed=elapsed,
        )

    def check_backoff(
        self,
        request: Request,
        outcome: Answer | TransportFailure,
        delay: float,
        secrets: Sequence[str],
    ) -> None:
        """Raise :class:`APITimeoutError` now if sleeping ``delay`` would pass the deadline."""
        if self.deadline is None or asyncio.get_running_loop().time() + delay < self.deadline:
            return
        try:
            self.finish(request, outcome, secrets)
        except APIError as last:  # chained: what the last attempt got
            error = self.deadline_error(request, self.deadline - self.started)
            raise error from last
        raise AssertionError("a retried outcome is an error")  # pragma: no cover

    def deadline_error(self, request: Request, total: float | None) -> APITimeoutError:
        """The error for a call whose deadline passed (or would pass in the next backoff)."""
        error = APITimeoutError(
            f"{request.method} {request.path}: no answer within the {total}s deadline "
            f"({self.attempt + 1} attempt{'s' if self.attempt else ''})",
            method=request.method,
            path=request.path,
        )
        error.possibly_applied = self.possibly_applied
        return error
