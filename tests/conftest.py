"""Shared fixtures: an HTTP mock standing in for the Cloudflare API, and a client on it.

Fixtures only: the helpers tests import (ids, canned answers, emulator clients)
are in ``tests/_support.py``.

aioresponses 0.7.9 cannot mock aiohttp 3.14 (pnuckowski/aioresponses#289), so
HTTP-level unit tests use aiointercept, which routes requests through a real
local aiohttp.web server: what the tests see is what went over the wire.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiointercept import aiointercept

from realtimekit_async import RealtimeKit
from realtimekit_async.emulator import _emulator

from ._schema_check import DRIFT_FILE_VARIABLE, checked_builder
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

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _emulators_answer_by_the_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Have every emulator the suite starts check its answers, in this process and in
    every Python subprocess (through tests/_schema_site/sitecustomize.py)."""
    build: Callable[[Any], web.Application] = getattr(_emulator, "build_api_app")  # noqa: B009
    drift_file = tmp_path_factory.mktemp("schema") / "drift.txt"
    drift_file.touch()
    paths = [str(ROOT / "tests" / "_schema_site"), str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_emulator, "build_api_app", checked_builder(build, SCHEMA_DRIFT.append))
        patch.setenv("PYTHONPATH", os.pathsep.join(paths))
        patch.setenv(DRIFT_FILE_VARIABLE, str(drift_file))
        yield drift_file


@pytest.fixture
def schema_drift_file(_emulators_answer_by_the_schema: Path) -> Path:
    """The file subprocesses' emulators write schema departures to (read after each test)."""
    return _emulators_answer_by_the_schema


@pytest.fixture(autouse=True)
def _no_schema_drift(_emulators_answer_by_the_schema: Path) -> Iterator[None]:
    """Fail the test when an emulator answer (here or in a subprocess) left the schema."""
    drift_file = _emulators_answer_by_the_schema
    SCHEMA_DRIFT.clear()
    yield
    drift, SCHEMA_DRIFT[:] = list(SCHEMA_DRIFT), []
    drift += drift_file.read_text(encoding="utf-8").splitlines()
    drift_file.write_text("", encoding="utf-8")
    assert not drift, "emulator answers depart from the schema:\n" + "\n".join(drift[:20])
