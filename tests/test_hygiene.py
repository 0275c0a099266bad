"""Suite hygiene: warnings are errors, so a leaked aiohttp session fails the test that leaks it."""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import textwrap
import tomllib
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_suite_turns_warnings_into_errors() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert config["filterwarnings"] == ["error"]
    with pytest.raises(ResourceWarning):
        warnings.warn("in force here too", ResourceWarning, stacklevel=1)


async def test_an_unclosed_session_warns() -> None:
    sessions = [aiohttp.ClientSession()]  # made in the loop, then dropped unclosed
    with pytest.warns(ResourceWarning, match="Unclosed client session"):
        _drop(sessions)


def _drop(objects: list[Any]) -> None:
    objects.clear()
    gc.collect()


LEAKY_TESTS = textwrap.dedent(
    """
    from realtimekit_async import RealtimeKit

    AUTH = dict(api_token="t", account_id="a", app_id="b", base_url="http://127.0.0.1:9/client/v4")


    async def test_closes_its_client():
        async with RealtimeKit(**AUTH) as client:
            assert not client.session.closed


    async def test_leaks_its_client():
        client = RealtimeKit(**AUTH)
        assert not client.session.closed  # the session exists; nobody closes it
    """
)


def _pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest in a subprocess with this project's own settings (warnings as errors)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(directory),
            "-p",
            "no:cacheprovider",
            "-q",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory,
        check=False,
    )


def test_a_leaked_session_fails_the_suite(tmp_path: Path) -> None:
    """Same tests, same settings: with the leaking test the run fails, without it it passes.

    The session of a client nobody closed is found by the collector (at the latest
    when pytest finishes) and its ResourceWarning fails the run.
    """
    (tmp_path / "test_leak.py").write_text(LEAKY_TESTS)
    leaky = _pytest(tmp_path, "test_leak.py")
    output = leaky.stdout + leaky.stderr
    assert leaky.returncode != 0, output
    assert "ResourceWarning: Unclosed client session" in output
    clean = _pytest(tmp_path, "test_leak.py", "-k", "test_closes_its_client")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Unclosed" not in clean.stdout + clean.stderr


def test_no_test_module_imports_conftest() -> None:
    """Helpers live in tests/_support.py; conftest.py holds fixtures only."""
    importers = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("*.py")
        if path.name != "conftest.py"
        and any(
            line.startswith(("from .conftest", "from . import conftest", "from tests.conftest"))
            for line in path.read_text().splitlines()
        )
    ]
    assert importers == []


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in the ``_``-prefixed support modules, not in test modules."""
    pattern = re.compile(r"^from (\.|tests\.)(emulator\.)?test_\w+ import", re.MULTILINE)
    importers = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert importers == []


def test_the_coverage_floor_is_enforced_by_make_unit() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]
    assert config["report"]["fail_under"] > 0
    assert "--cov" in (ROOT / "Makefile").read_text()
