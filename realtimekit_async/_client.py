"""The async client: one aiohttp session, one request path, retries and rate limiting.

Decisions (URLs, error mapping, whether and when to retry) come from the pure
functions in ``_sansio``; this module only does the I/O around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import random
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Self

import aiohttp
import attrs
from aiohttp import hdrs
from yarl import URL

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
    APIConnectionError,
    APIError,
    APIResponseTooLargeError,
    APITimeoutError,
    RealtimeKitError,
    ValidationError,
)
from ._models import check_int
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
    RetryPolicy,
    check_id,
    possibly_processed,
    recordings_url,
    retry_delay,
    status_error,
    unwrap,
)
from ._version import __version__

__all__ = ["RealtimeKit", "read_body"]

logger: Final = logging.getLogger("realtimekit_async")

USER_AGENT: Final = (
    f"realtimekit_async/{__version__} (Python {platform.python_version()}; "
    f"aiohttp {aiohttp.__version__})"
)


_READ_CHUNK: Final = 64 * 1024


async def read_body(
    response: aiohttp.ClientResponse, limit: int, *, method: str, path: str
) -> bytes:
    """Read an answer's whole body, or raise :class:`APIResponseTooLargeError` past ``limit``.

    The body is read piece by piece as aiohttp inflates it, so what is counted
    is what would be held in memory: a small gzip bomb or an endless chunked
    body fails at ``limit`` bytes, whatever ``Content-Length`` claims.
    """

    def too_large() -> APIResponseTooLargeError:
        return APIResponseTooLargeError(
            f"{method} {path}: HTTP {response.status} answer is larger than {limit} bytes "
            "(raise max_response_size if this is expected)",
            status=response.status,
            limit=limit,
            method=method,
            path=path,
        )

    declared = response.content_length
    if declared is not None and declared > limit and hdrs.CONTENT_ENCODING not in response.headers:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


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
    ) -> None:
        self._session = session
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
    ) -> None:
        check_int("max_concurrency", max_concurrency, 1)
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
        self._init(options, _Transport(session, limits, max_concurrency), owner=True)

    def _init(self, options: ClientOptions, transport: _Transport, *, owner: bool) -> None:
        self._options = options
        self._transport = transport
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
    ) -> RealtimeKit:
        """A copy of this client with some settings changed, sharing its session and limits.

        Closing the copy does not close the session; closing the original does.
        """
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
        copy = object.__new__(RealtimeKit)
        copy._init(attrs.evolve(self._options, **changes), self._transport, owner=False)
        return copy

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
        app_id: str | None = None,
        query: Sequence[tuple[str, str]] | None = None,
        body: bytes | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Send one API call, retrying as the policy allows; return the decoded envelope.

        Raises :class:`APIStatusError` subclasses, :class:`APIConnectionError`,
        :class:`APITimeoutError` or :class:`APIResponseValidationError` (its
        subclass :class:`APIResponseTooLargeError` for an answer past the bound).
        """
        url = self._url(app_id, segments)
        options = self._options
        path = url.raw_path
        headers = {"Authorization": f"Bearer {options.api_token}", "Accept": "application/json"}
        secrets = (options.api_token,)  # a server may echo them back in an error body
        if body is not None:
            headers["Content-Type"] = "application/json"
        session = self._transport.session
        loop = asyncio.get_running_loop()
        attempt = 0
        possibly_applied = False  # an earlier attempt may have been carried out
        while True:
            started = loop.time()
            status: int | None = None
            failure: Failure | None = None
            error: APIError | None = None
            answer_headers: Any = {}
            # Rate limits: wait for this attempt's turn, or fail fast during a long block.
            ticket = await self._transport.pace(method, path, possibly_applied=possibly_applied)
            try:
                async with (
                    self._transport.slot(),
                    session.request(
                        method,
                        url,
                        params=query,
                        data=body,
                        headers=headers,
                        timeout=options.timeout,
                        allow_redirects=False,
                    ) as response,
                ):
                    payload = await read_body(
                        response, options.max_response_size, method=method, path=path
                    )
                    # Only a fully read answer counts: a body cut short is a failure.
                    status, answer_headers = response.status, response.headers
                    # Rate limits: the answer's headers update the shared budget.
                    self._transport.observe(
                        ticket, status, answer_headers, payload, options.retry.max_server_delay
                    )
                    self._transport.last_date = (answer_headers.get("Date"), datetime.now(UTC))
            except APIResponseTooLargeError as exc:
                # A success too large to read was still carried out (a started recording).
                exc.possibly_applied = possibly_applied or 200 <= exc.status < 300
                raise  # reading it again would cost as much: not retried
            except aiohttp.ConnectionTimeoutError:
                failure = Failure.CONNECT
                error = APITimeoutError(
                    f"{method} {path}: timed out connecting", method=method, path=path
                )
            except aiohttp.ClientConnectorError as exc:
                failure = Failure.CONNECT
                error = APIConnectionError(
                    # str(exc), not exc.os_error: aiohttp 3.13's certificate error lacks it.
                    f"{method} {path}: cannot connect: {exc}",
                    method=method,
                    path=path,
                )
            except TimeoutError:
                failure = Failure.AFTER_SEND
                error = APITimeoutError(f"{method} {path}: timed out", method=method, path=path)
            except aiohttp.ClientError as exc:
                failure = Failure.AFTER_SEND
                error = APIConnectionError(
                    f"{method} {path}: connection failed: {type(exc).__name__}",
                    method=method,
                    path=path,
                )
            logger.debug(
                "%s %s -> %s in %.3fs (retry %d)",
                method,
                path,
                status if status is not None else failure and failure.value,
                loop.time() - started,
                attempt,
            )
            if status is not None and 200 <= status < 300:
                try:
                    return unwrap(
                        status, answer_headers, payload, method=method, path=path, secrets=secrets
                    )
                except APIError as exc:
                    exc.possibly_applied = possibly_applied
                    raise
            delay = retry_delay(
                options.retry,
                attempt,
                idempotent=idempotent,
                status=status,
                failure=failure,
                headers=answer_headers,
                jitter=random.random(),
            )
            if delay is None:
                if error is None:
                    assert status is not None
                    error = status_error(
                        status, answer_headers, payload, method=method, path=path, secrets=secrets
                    )
                error.possibly_applied = possibly_applied
                raise error
            possibly_applied |= possibly_processed(status=status, failure=failure)
            await asyncio.sleep(delay)
            attempt += 1
