"""HTTP rendering shared by both sites: error shapes, middleware, response headers.

The error shapes are the ones the real hosts answer with: RealtimeKit's
``{"success": false, "error": {code, message}}``, Cloudflare's v4 edge shape
(``errors``/``messages``/``result``) and S3-style XML on the storage host.
Handlers raise :class:`EmulatorHTTPError`; the API middleware renders it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict

from ._context import CTX_KEY, TRUNCATE, EmulatorContext, StorageRequest
from ._faults import Decision, format_retry_after
from ._util import EmulatorHTTPError

__all__ = [
    "API_PREFIX",
    "RATE_LIMIT_HEADER_STYLES",
    "abort",
    "api_middleware",
    "cf_error",
    "fault_middleware",
    "fault_response",
    "prepare_headers",
    "rate_limit_headers",
    "request_middleware",
    "rk_error",
    "scope_error",
    "storage_middleware",
    "xml_error",
]

API_PREFIX: Final = "/client/v4"
RATE_LIMIT_HEADER_STYLES: Final = ("ietf", "legacy", "none")
_RATE_LIMITED: Final = "Rate limited: please wait and retry later"
_HTML_502: Final = (
    "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
    "<center><h1>502 Bad Gateway</h1></center>\n<hr><center>cloudflare</center>\n"
    "</body>\n</html>\n"
)


# -- error shapes ---------------------------------------------------------------------


def rk_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """An error in the RealtimeKit shape ``{"success": false, "error": {code, message}}``."""
    body = {"success": False, "error": {"code": status, "message": message}}
    return web.json_response(body, status=status, headers=headers)


def cf_error(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An error in the Cloudflare v4 edge shape (``errors``/``messages``/``result``)."""
    body = {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }
    return web.json_response(body, status=status, headers=headers)


def xml_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An error in the S3 shape the storage host answers with."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml", headers=headers)


def scope_error(
    account_id: str | None, app_id: str | None, ctx: EmulatorContext
) -> web.Response | None:
    """The answer for a path naming an account or app this emulator does not have, else None.

    An account outside the token's reach is refused by Cloudflare's edge: 403,
    v4 shape, code 10000 "Authentication error" (what a wrong account id gets
    there). An unknown app inside the account is a missing resource: 404 in the
    RealtimeKit shape.
    """
    if account_id is not None and account_id != ctx.account_id:
        return cf_error(403, 10000, "Authentication error")
    if app_id is not None and app_id != ctx.app_id:
        return rk_error(404, f"app {app_id} not found in this account")
    return None


def fault_response(kind: str, site: str, retry_after: float) -> web.Response:
    """The response an injected status fault answers with (before any handler runs).

    API site: ``429`` and ``503`` use the Cloudflare edge shape, ``500`` and
    ``502`` the RealtimeKit shape; ``html`` is a proxy's HTML 502. The storage site
    answers S3-style XML for all but ``html``.
    """
    if kind == "html":
        return web.Response(status=502, text=_HTML_502, content_type="text/html")
    status = int(kind)
    headers = {"Retry-After": format_retry_after(retry_after)} if status == 429 else None
    if site == "storage":
        code = {429: "SlowDown", 500: "InternalError", 502: "BadGateway"}.get(
            status, "ServiceUnavailable"
        )
        return xml_error(status, code, "injected fault", headers)
    if status == 429:
        return cf_error(429, 971, _RATE_LIMITED, headers)
    if status == 503:
        return cf_error(503, 10503, "Service temporarily unavailable")
    message = "Internal server error" if status == 500 else "Bad gateway"
    return rk_error(status, message)


# -- headers --------------------------------------------------------------------------


def _whole_seconds(seconds: float) -> int:
    """Seconds rounded up, as the headers carry them (float noise is not a second)."""
    return max(0, math.ceil(round(seconds, 6)))


def rate_limit_headers(decision: Decision, style: str, now: datetime) -> dict[str, str]:
    """The rate-limit headers Cloudflare sends with an answer, in ``style``.

    ``ietf``: ``Ratelimit`` (remaining ``r``, seconds to reset ``t``) and
    ``Ratelimit-Policy`` (quota ``q`` per ``w`` seconds), one item per rule;
    ``legacy``: ``X-RateLimit-Limit`` / ``-Remaining`` of the tightest rule;
    ``none``: neither. A refusal always carries ``Retry-After`` (whole seconds,
    rounded up) and ``X-RateLimit-Reset`` (an RFC 1123 date).
    """
    headers: dict[str, str] = {}
    if style == "ietf" and decision.states:
        headers["Ratelimit"] = ", ".join(
            f'"{s.rule.name}";r={s.remaining};t={_whole_seconds(s.reset)}' for s in decision.states
        )
        headers["Ratelimit-Policy"] = ", ".join(
            f'"{s.rule.name}";q={s.rule.limit};w={_whole_seconds(s.rule.window)}'
            for s in decision.states
        )
    elif style == "legacy" and decision.states:
        tightest = min(decision.states, key=lambda s: s.remaining)
        headers["X-RateLimit-Limit"] = str(tightest.rule.limit)
        headers["X-RateLimit-Remaining"] = str(tightest.remaining)
    if decision.retry_after is not None:
        headers["Retry-After"] = format_retry_after(decision.retry_after, round_up=True)
        reset = now + timedelta(seconds=math.ceil(decision.retry_after))
        headers["X-RateLimit-Reset"] = format_datetime(reset, usegmt=True)
    return headers


async def prepare_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Signal handler: stamp a unique ``cf-ray`` and the emulated ``Date`` on every
    response, and count statuses."""
    ctx = request.app[CTX_KEY]
    response.headers["cf-ray"] = ctx.next_ray()
    # The server's clock is the emulated one: clients judge expiries by this header.
    response.headers["Date"] = format_datetime(ctx.clock.now(), usegmt=True)
    transport = request.transport
    # A "reset" fault's placeholder response never reaches the client: not counted.
    if transport is not None and not transport.is_closing():
        ctx.stats.statuses[response.status] += 1


# -- middleware -----------------------------------------------------------------------


def abort(request: web.BaseRequest) -> None:
    """Drop the connection under a request without an answer (reset and truncate faults)."""
    if request.transport is not None:
        request.transport.abort()


async def _catch_up(ctx: EmulatorContext) -> None:
    """Apply due lifecycle transitions, then wait the configured latency."""
    ctx.store.run_due()
    if ctx.latency > 0:
        await asyncio.sleep(ctx.latency)


def fault_middleware(site: str) -> Middleware:
    """Middleware injecting the scheduled fault (if any) for requests on ``site``.

    All kinds but ``truncate`` act before the handler, leaving state untouched.
    ``truncate`` runs the handler (so a start really happens) and then sends half
    of the body under a larger Content-Length before dropping the connection.
    """

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request.app[CTX_KEY]
        schedule = ctx.faults
        kind = schedule.next_fault(site, request.method) if schedule is not None else None
        if kind is None:
            return await handler(request)
        assert schedule is not None
        ctx.stats.faults[kind] += 1
        cfg = schedule.config
        if kind == "slow":
            await asyncio.sleep(cfg.slow_seconds)
            return await handler(request)
        if kind == "reset":
            abort(request)
            return web.Response(status=500)
        if kind != "truncate":
            return fault_response(kind, site, cfg.retry_after)
        token = TRUNCATE.set(True)
        try:
            response = await handler(request)
        finally:
            TRUNCATE.reset(token)
        if response.prepared or not isinstance(response, web.Response):
            return response
        body = response.body if isinstance(response.body, bytes) else b""
        stream = web.StreamResponse(status=response.status, headers=response.headers)
        stream.content_length = len(body) + max(16, len(body))
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        abort(request)
        return stream

    return faults


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost API middleware: count the request per route, catch the lifecycle up."""
    ctx = request.app[CTX_KEY]
    ctx.stats.requests[request.match_info.route.name or "unmatched"] += 1
    await _catch_up(ctx)
    return await handler(request)


@web.middleware
async def storage_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost storage middleware: count and record the download, catch the lifecycle up."""
    ctx = request.app[CTX_KEY]
    ctx.stats.requests["download"] += 1
    ctx.storage_requests.append(
        StorageRequest(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=CIMultiDict(request.headers),
        )
    )
    await _catch_up(ctx)
    return await handler(request)


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and value.strip() == token


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Innermost API middleware: auth, account/app scope and rate limit, then the
    handler with its errors rendered in the RealtimeKit shape."""
    ctx = request.app[CTX_KEY]
    if request.path.startswith(API_PREFIX + "/") or request.path == API_PREFIX:
        if not _authorized(request, ctx.token):
            return cf_error(401, 10000, "Authentication error")
        refused = scope_error(
            request.match_info.get("account_id"), request.match_info.get("app_id"), ctx
        )
        if refused is not None:
            return refused
        if ctx.rate_limiter is not None:
            token = request.headers["Authorization"].partition(" ")[2].strip()
            decision = ctx.rate_limiter.acquire(token)  # budgets are per token
            limits = rate_limit_headers(decision, ctx.rate_limit_headers, datetime.now(UTC))
            if not decision.allowed:
                ctx.stats.rate_limited += 1
                return cf_error(429, 971, _RATE_LIMITED, limits)
            response = await _handle(request, handler)
            response.headers.update(limits)
            return response
    return await _handle(request, handler)


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler, rendering its errors in the RealtimeKit shape."""
    try:
        return await handler(request)
    except EmulatorHTTPError as exc:
        return rk_error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status == 404:
            message = f"route {request.method} {request.path} not found"
        else:
            message = exc.reason
        headers: dict[str, str] | None = None
        if "Allow" in exc.headers:
            headers = {"Allow": exc.headers["Allow"]}
        return rk_error(exc.status, message, headers)
