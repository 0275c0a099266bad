"""The emulator's pytest plugin, as a user's own test suite would load it.

The suite is the docs' own snippet (docs/guides/emulator.md) with the
``conftest.py`` it describes; it runs in a fresh pytest process in each of
pytest-asyncio's modes (``strict``, the default, and ``auto``), with warnings
as errors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ._snippets import snippets

pytestmark = pytest.mark.newest  # docs and packaging: one run is enough

# The plugin's snippet in docs/guides/emulator.md, as a user's test module.
(SNIPPET,) = snippets("pytest")
CONFTEST = 'pytest_plugins = ["realtimekit_async.emulator.pytest_plugin"]\n'


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_plugin_in_a_users_suite(tmp_path: Path, mode: str) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_user.py").write_text(SNIPPET.code)
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
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
