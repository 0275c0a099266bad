"""The emulator's pytest plugin, as a user's own test suite would load it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_SUITE = """
import pytest
from realtimekit_async import RealtimeKit, RecordingStatus

pytest_plugins = ["realtimekit_async.emulator.pytest_plugin"]


async def test_with_default_emulator(realtimekit_emulator):
    emu = realtimekit_emulator
    async with RealtimeKit(api_token=emu.token, account_id=emu.account_id,
                           app_id=emu.app_id, base_url=emu.base_url) as client:
        rec = await client.recordings.start("user-meeting")
        assert rec.status is RecordingStatus.INVOKED


async def test_with_factory(realtimekit_emulator_factory):
    emu = await realtimekit_emulator_factory(recordings=25, speed=0)
    async with RealtimeKit(api_token=emu.token, account_id=emu.account_id,
                           app_id=emu.app_id, base_url=emu.base_url) as client:
        assert len([r async for r in client.recordings.list(per_page=10)]) == 25
"""


def test_plugin_in_a_users_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_SUITE)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
