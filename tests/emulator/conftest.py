"""Fixtures for the emulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from realtimekit_async.emulator import Emulator
from realtimekit_async.emulator.pytest_plugin import (
    EmulatorFactory,
    realtimekit_emulator,
    realtimekit_emulator_factory,
)

from ._support import FIXED_START, Receiver

__all__ = ["realtimekit_emulator", "realtimekit_emulator_factory"]


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session without default headers."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest_asyncio.fixture
async def make_emu(realtimekit_emulator_factory: EmulatorFactory) -> EmulatorFactory:
    """Factory with test defaults: frozen clock (speed 0) at a fixed start time."""

    async def factory(**options: Any) -> Emulator:
        options.setdefault("speed", 0)
        options.setdefault("start_time", FIXED_START)
        return await realtimekit_emulator_factory(**options)

    return factory


@pytest_asyncio.fixture
async def emu(make_emu: EmulatorFactory) -> Emulator:
    """An empty emulator with a frozen clock."""
    return await make_emu()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running webhook receiver."""
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.close()
