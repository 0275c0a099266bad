"""pytest fixtures that run a RealtimeKit emulator per test.

Enable in a top-level ``conftest.py``::

    pytest_plugins = ["realtimekit_async.emulator.pytest_plugin"]

(or ``pytest -p realtimekit_async.emulator.pytest_plugin``). Requires
pytest-asyncio 0.24 or newer, in either mode: with ``asyncio_mode = auto`` async
tests just take the fixtures; in ``strict`` mode (pytest-asyncio's default)
mark them ``@pytest.mark.asyncio`` as usual. The fixtures are function-scoped
and run in the test's event loop (the default ``function`` loop scope).
Fixtures:

``realtimekit_emulator``
    A started :class:`~realtimekit_async.emulator.Emulator` with default options.

``realtimekit_emulator_factory``
    An async callable taking ``Emulator`` keyword arguments and returning a
    started emulator; every emulator it made is closed after the test::

        async def test_listing(realtimekit_emulator_factory):
            emu = await realtimekit_emulator_factory(recordings=100, speed=0)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from ._emulator import Emulator

__all__ = ["EmulatorFactory", "realtimekit_emulator", "realtimekit_emulator_factory"]

EmulatorFactory = Callable[..., Awaitable[Emulator]]


@pytest_asyncio.fixture
async def realtimekit_emulator() -> AsyncIterator[Emulator]:
    """A started emulator with default options, closed after the test."""
    async with Emulator() as emu:
        yield emu


@pytest_asyncio.fixture
async def realtimekit_emulator_factory() -> AsyncIterator[EmulatorFactory]:
    """Start emulators with custom options; all are closed after the test."""
    started: list[Emulator] = []

    async def factory(**options: Any) -> Emulator:
        emu = Emulator(**options)
        await emu.start()
        started.append(emu)
        return emu

    try:
        yield factory
    finally:
        for emu in reversed(started):
            await emu.close()
