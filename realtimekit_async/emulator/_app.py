"""The API site: the routes and their handlers (parse, call the store, render)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from ._context import CTX_KEY, EmulatorContext
from ._http import (
    API_PREFIX,
    api_middleware,
    fault_middleware,
    prepare_headers,
    request_middleware,
)
from ._parsing import (
    parse_control_body,
    parse_json_body,
    parse_list_query,
    parse_start_body,
    parse_track_body,
)
from ._serialize import View, recording_json
from ._state import Recording

__all__ = ["WELL_KNOWN_PATH", "build_api_app"]

WELL_KNOWN_PATH: Final = "/.well-known/webhooks.json"
_RECORDINGS: Final = API_PREFIX + "/accounts/{account_id}/realtime/kit/{app_id}/recordings"


def _ok(data: Any, status: int = 200, **extra: Any) -> web.Response:
    return web.json_response({"success": True, "data": data, **extra}, status=status)


def _render(ctx: EmulatorContext, rec: Recording, view: View) -> dict[str, Any]:
    return recording_json(
        rec,
        ctx.store.meetings[rec.meeting_id],
        view=view,
        url_for=ctx.signer.url_for,
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
    rec = ctx.store.start(parse_start_body(parse_json_body(await request.read())))
    ctx.stats.starts_by_meeting[rec.meeting_id] += 1
    return _ok(_render(ctx, rec, "detail"), status=ctx.start_status)


async def _start_track(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    rec = ctx.store.start(parse_track_body(parse_json_body(await request.read())))
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
    action = parse_control_body(parse_json_body(await request.read()))
    rec = ctx.store.control(request.match_info["recording_id"], action)
    return _ok(_render(ctx, rec, "detail"))


async def _webhook_key(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    pem = ctx.public_key_pem()
    if ctx.public_key_literal_newlines:
        pem = pem.replace("\n", "\\n")
    return _ok({"publicKey": pem})


def build_api_app(ctx: EmulatorContext) -> web.Application:
    """The API site: six Recordings routes under ``/client/v4`` plus the webhook key."""
    app = web.Application(middlewares=[request_middleware, fault_middleware("api"), api_middleware])
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
