"""The suite-wide schema check of emulator answers, for this process and its children.

:func:`install` makes every emulator built afterwards check each API answer
with :func:`tests._schema.answer_problems` (inside its error handling, outside
fault injection: a fault's deliberately broken answers are not the API's) and
hand every departure to ``record``. ``tests/conftest.py`` installs it in the
test process; ``tests/_schema_site/sitecustomize.py`` installs it in every
Python subprocess the suite starts (CLI emulators, the README's standalone
emulator, benchmark servers, nested pytest runs), recording into the file
named by ``RTK_SCHEMA_DRIFT_FILE``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from realtimekit_async.emulator import _emulator
from realtimekit_async.emulator._context import CTX_KEY

from ._schema import answer_problems

#: Where subprocesses write what departs from the schema, one line each.
DRIFT_FILE_VARIABLE = "RTK_SCHEMA_DRIFT_FILE"


def schema_check(record: Callable[[str], object]) -> Any:
    """An aiohttp middleware checking each emulator answer against the schema."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        route = request.match_info.route.name or ""
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            ctx = request.app[CTX_KEY]
            for problem in answer_problems(
                route,
                response.status,
                response.body,
                start_status=ctx.start_status,
                track_shape=ctx.track_response,
            ):
                record(f"{request.method} {request.path} ({route}): {problem}")
        return response

    return check


def checked_builder(
    build: Callable[[Any], web.Application], record: Callable[[str], object]
) -> Callable[[Any], web.Application]:
    """``build`` (the emulator's API app factory) with the schema check inserted."""
    middleware = schema_check(record)

    def build_checked(ctx: Any) -> web.Application:
        app = build(ctx)
        app.middlewares.insert(len(app.middlewares) - 1, middleware)
        return app

    return build_checked


def install_in_subprocess(path: str) -> None:
    """Check every emulator of this (sub)process, appending departures to ``path``."""

    def record(line: str) -> None:
        with open(path, "a", encoding="utf-8") as sink:
            sink.write(line.replace("\n", " ") + "\n")

    build = getattr(_emulator, "build_api_app")  # noqa: B009
    setattr(_emulator, "build_api_app", checked_builder(build, record))  # noqa: B010
