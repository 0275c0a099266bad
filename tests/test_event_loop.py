"""A client belongs to the event loop it was first used in."""

from __future__ import annotations

import asyncio

import pytest

from realtimekit_async import RealtimeKitError
from realtimekit_async.emulator import Emulator

from ._support import emulator_client


def test_a_second_event_loop_gets_an_sdk_error() -> None:
    async def scenario() -> None:
        async with Emulator() as emu:
            client = emulator_client(emu)
            await client.recordings.start("m-1")  # first use: this loop

            def elsewhere() -> None:
                asyncio.run(client.recordings.get("r-1"))

            with pytest.raises(RealtimeKitError, match="another event loop") as info:
                await asyncio.to_thread(elsewhere)
            assert "async with RealtimeKit() as client" in str(info.value)
            # The first loop keeps working.
            assert (await client.recordings.get_active("m-1")).id
            assert emu.stats.requests["get_recording"] == 0
            await client.close()

    asyncio.run(scenario())
