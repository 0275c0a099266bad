"""A child process's emulator and one call to it (tests/test_schema.py drives it)."""

from __future__ import annotations

from realtimekit_async import RealtimeKit
from realtimekit_async.emulator import Emulator


async def start_one() -> None:
    """Start a recording on a fresh emulator, so one start answer is checked."""
    async with (
        Emulator(speed=0) as emu,
        RealtimeKit(
            api_token=emu.token,
            account_id=emu.account_id,
            app_id=emu.app_id,
            base_url=emu.base_url,
            rate_limit=None,
        ) as client,
    ):
        await client.recordings.start("b2ea9a1c-6e1a-4fe4-a799-aa6d9a6ab26e")
