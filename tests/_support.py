"""Helpers the tests import: the mock API's ids, canned answers, clients on an emulator.

Fixtures stay in ``conftest.py`` (pytest finds them there); anything a test
module imports lives here, so no test imports ``conftest``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

from realtimekit_async import RealtimeKit, RetryPolicy
from realtimekit_async._cli import build_parser, run

TOKEN = "test-token-5f2b8c"
ACCOUNT = "acc123"
APP = "app456"
BASE = "https://api.cloudflare.com/client/v4"
# The backoff schedule itself is tested in test_sansio; here retries should be quick.
FAST_RETRY = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
RECORDINGS = f"{BASE}/accounts/{ACCOUNT}/realtime/kit/{APP}/recordings"


def recording_json(**overrides: Any) -> dict[str, Any]:
    """A recording as the API sends it, nullable fields present with null."""
    doc: dict[str, Any] = {
        "id": "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e",
        "audio_download_url": None,
        "download_url": None,
        "download_url_expiry": None,
        "file_size": None,
        "invoked_time": "2025-01-02T03:04:05.678Z",
        "output_file_name": "meeting.mp4",
        "session_id": None,
        "started_time": None,
        "status": "INVOKED",
        "stopped_time": None,
        "recording_duration": 0,
    }
    doc.update(overrides)
    return doc


def ok(data: Any, **extra: Any) -> dict[str, Any]:
    return {"success": True, "data": data, **extra}


def emulator_client(emu: Any, *, retries: int = 4, **options: Any) -> RealtimeKit:
    """A client on an emulator: no rate limit, quick retries (the backoff is tested elsewhere)."""
    policy = RetryPolicy(max_retries=retries, initial_delay=0.001, max_delay=0.01)
    settings: dict[str, Any] = {"rate_limit": None, "max_retries": policy, **options}
    return RealtimeKit(
        api_token=emu.token,
        account_id=emu.account_id,
        app_id=emu.app_id,
        base_url=emu.base_url,
        **settings,
    )


def emulator_flags(emu: Any) -> list[str]:
    """CLI connection flags pointing at an emulator."""
    return [
        "--base-url",
        emu.base_url,
        "--api-token",
        emu.token,
        "--account-id",
        emu.account_id,
        "--app-id",
        emu.app_id,
    ]


def sent(api: Any) -> list[Any]:
    """Every request the mock received, in order."""
    return [request for _key, request in api.ordered_requests]


async def eventually(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait until ``condition()`` holds, yielding to the loop: instead of sleeping a guess.

    Fails the test with ``AssertionError`` if it still does not hold after ``within`` seconds.
    """
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110  # foreign state: no event to await
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(f"still not true after {within} s: {condition}") from None


#: Answers that departed from the schema during the current test (filled by conftest).
SCHEMA_DRIFT: list[str] = []


async def cli(*argv: str, err: io.StringIO | None = None) -> tuple[int, str, str]:
    """Run the ``realtimekit`` command line in this loop; its exit code, stdout and stderr."""
    out = io.StringIO()
    err = err if err is not None else io.StringIO()
    code = await run(build_parser().parse_args(argv), out, err)
    return code, out.getvalue(), err.getvalue()
