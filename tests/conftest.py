"""Shared fixtures: an HTTP mock standing in for the Cloudflare API, and a client on it.

Fixtures only: the helpers tests import (ids, canned answers, emulator clients)
are in ``tests/_support.py``.

aioresponses 0.7.9 cannot mock aiohttp 3.14 (pnuckowski/aioresponses#289), so
HTTP-level unit tests use aiointercept, which routes requests through a real
local aiohttp.web server: what the tests see is what went over the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from aiointercept import aiointercept

from realtimekit_async import RealtimeKit
from realtimekit_async.emulator import _emulator
from realtimekit_async.emulator._context import CTX_KEY

from ._schema import answer_problems
from ._support import ACCOUNT, APP, FAST_RETRY, SCHEMA_DRIFT, TOKEN

# The moto S3 server and its helpers, for every test module that stores objects.
pytest_plugins = ("tests._moto_support",)


@pytest.fixture
async def api() -> AsyncIterator[Any]:
    """The mocked Cloudflare API (requests to api.cloudflare.com land here)."""
    async with aiointercept(mock_external_urls=True) as mock:
        yield mock


@pytest.fixture
async def client(api: Any) -> AsyncIterator[RealtimeKit]:
    """A client on the default base URL with fast retries and no rate limit."""
    async with RealtimeKit(
        api_token=TOKEN, account_id=ACCOUNT, app_id=APP, rate_limit=None, max_retries=FAST_RETRY
    ) as rtk:
        yield rtk


# -- every emulator answer in the suite against the published schema ----------------------


@web.middleware
async def _schema_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check each answer of the emulator's API against tests/schema (see tests/_schema.py)."""
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
            SCHEMA_DRIFT.append(f"{request.method} {request.path} ({route}): {problem}")
    return response


@pytest.fixture(scope="session", autouse=True)
def _emulators_answer_by_the_schema() -> Iterator[None]:
    """Have every emulator the suite starts check its answers (inside its error handling,
    outside fault injection: a fault's deliberately broken answers are not the API's)."""
    build: Callable[[Any], web.Application] = getattr(_emulator, "build_api_app")  # noqa: B009

    def build_checked(ctx: Any) -> web.Application:
        app = build(ctx)
        app.middlewares.insert(len(app.middlewares) - 1, _schema_check)
        return app

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_emulator, "build_api_app", build_checked)
        yield


@pytest.fixture(autouse=True)
def _no_schema_drift() -> Iterator[None]:
    """Fail the test when an emulator answer departed from the schema."""
    SCHEMA_DRIFT.clear()
    yield
    drift, SCHEMA_DRIFT[:] = list(SCHEMA_DRIFT), []
    assert not drift, "emulator answers depart from the schema:\n" + "\n".join(drift[:20])
