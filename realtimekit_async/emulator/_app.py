"""The API site: routes, auth, rate limit, fault injection and error shapes."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from ._context import CTX_KEY, TRUNCATE, EmulatorContext
from ._faults import Decision, format_retry_after
from ._serialize import View, recording_json
from ._state import Recording, parse_list_query, parse_start_body, parse_track_body
from ._util import ApiError

__all__ = [
    "API_PREFIX",
    "WELL_KNOWN_PATH",
    "build_api_app",
    "cf_error",
    "fault_middleware",
    "fault_response",
    "prepare_headers",
    "rate_limit_headers",
    "rk_error",
    "scope_error",
]

API_PREFIX: Final = "/client/v4"
WELL_KNOWN_PATH: Final = "/.well-known/webhooks.json"
_RECORDINGS: Final = API_PREFIX + "/accounts/{account_id}/realtime/kit/{app_id}/recordings"
_HTML_502: Final = (
    "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
    "<center><h1>502 Bad Gateway</h1></center>\n<hr><center>cloudflare</center>\n"
    "</body>\n</html>\n"
)


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
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>injected fault</Message></Error>"
        )
        return web.Response(
            status=status, text=text, content_type="application/xml", headers=headers
        )
    if status == 429:
        return cf_error(429, 971, "Rate limited: please wait and retry later", headers)
    if status == 503:
        return cf_error(503, 10503, "Service temporarily unavailable")
    message = "Internal server error" if status == 500 else "Bad gateway"
    return rk_error(status, message)


RATE_LIMIT_HEADER_STYLES: Final = ("ietf", "legacy", "none")


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


def _abort(request: web.BaseRequest) -> None:
    if request.transport is not None:
        request.transport.abort()


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


def fault_middleware(site: str) -> Any:
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
            _abort(request)
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
        _abort(request)
        return stream

    return faults


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "request body must be valid JSON") from None


def _ok(data: Any, status: int = 200, **extra: Any) -> web.Response:
    return web.json_response({"success": True, "data": data, **extra}, status=status)


def _render(ctx: EmulatorContext, rec: Recording, view: View) -> dict[str, Any]:
    signer = ctx.signer
    return recording_json(
        rec,
        ctx.store.meetings[rec.meeting_id],
        view=view,
        url_for=lambda r, kind: signer.url(r.id, kind, (r.expiry_ms or 0) // 1000),
        extra_fields=ctx.extra_fields,
    )


async def _list_recordings(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    cfg = ctx.store.config
    query = parse_list_query(
        request.query.items(),
        default_per_page=cfg.default_per_page,
        max_per_page=cfg.max_per_page,
    )
    items, window = ctx.store.list_page(query)
    data = [_render(ctx, rec, "list") for rec in items]
    paging = {
        "start_offset": window.start_offset,
        "end_offset": window.end_offset,
        "total_count": window.total_count,
    }
    return _ok(data, paging=paging)


async def _start_recording(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    rec = ctx.store.start(parse_start_body(await _json_body(request)))
    ctx.stats.starts_by_meeting[rec.meeting_id] += 1
    return _ok(_render(ctx, rec, "detail"), status=ctx.start_status)


async def _start_track(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    rec = ctx.store.start(parse_track_body(await _json_body(request)))
    ctx.stats.starts_by_meeting[rec.meeting_id] += 1
    if ctx.track_response == "none":
        return web.json_response({"success": True})
    # The schema's data.recording is the bare recording, without the detail view's extras.
    data = _render(ctx, rec, "active")
    return _ok({"recording": data} if ctx.track_response == "current" else data)


async def _get_active(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    rec = ctx.store.get_active(request.match_info["meeting_id"])
    return _ok(_render(ctx, rec, "active"))


async def _get_recording(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    rec = ctx.store.get(request.match_info["recording_id"])
    return _ok(_render(ctx, rec, "detail"))


async def _control_recording(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    rec = ctx.store.control(request.match_info["recording_id"], body.get("action"))
    return _ok(_render(ctx, rec, "detail"))


async def _webhook_key(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    pem = ctx.public_key_pem()
    if ctx.public_key_literal_newlines:
        pem = pem.replace("\n", "\\n")
    return _ok({"publicKey": pem})


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and value.strip() == token


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


@web.middleware
async def _outer(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CTX_KEY]
    ctx.stats.requests[request.match_info.route.name or "unmatched"] += 1
    ctx.store.run_due()
    if ctx.latency > 0:
        await asyncio.sleep(ctx.latency)
    return await handler(request)


@web.middleware
async def _core(request: web.Request, handler: Handler) -> web.StreamResponse:
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
                return cf_error(429, 971, "Rate limited: please wait and retry later", limits)
            response = await _handle(request, handler)
            response.headers.update(limits)
            return response
    return await _handle(request, handler)


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler, rendering its errors in the RealtimeKit shape."""
    try:
        return await handler(request)
    except ApiError as exc:
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


def build_api_app(ctx: EmulatorContext) -> web.Application:
    """The API site: six Recordings routes under ``/client/v4`` plus the webhook key."""
    app = web.Application(middlewares=[_outer, fault_middleware("api"), _core])
    app[CTX_KEY] = ctx
    router = app.router
    router.add_get(_RECORDINGS, _list_recordings, name="list_recordings")
    router.add_post(_RECORDINGS, _start_recording, name="start_recording")
    router.add_post(_RECORDINGS + "/track", _start_track, name="start_track_recording")
    router.add_get(
        _RECORDINGS + "/active-recording/{meeting_id}", _get_active, name="get_active_recording"
    )
    router.add_get(_RECORDINGS + "/{recording_id}", _get_recording, name="get_recording")
    router.add_put(_RECORDINGS + "/{recording_id}", _control_recording, name="control_recording")
    router.add_get(WELL_KNOWN_PATH, _webhook_key, name="webhook_public_key")
    app.on_response_prepare.append(prepare_headers)
    return app
