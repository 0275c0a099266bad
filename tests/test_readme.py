"""Every Python snippet of the README and the docs runs, against the emulator.

A snippet is a ```python block. It must be a complete program (imports, no
top-level ``await``, no undefined names) that reads its connection from the
variables the README tells users to set. The README's Quickstart runs against
``realtimekit emulator`` started as the README says, with no flags but a free
port; every other snippet runs at the same time against one emulator that runs
20 times faster and delivers webhooks to ``$PORT``. A block preceded by
``<!-- snippet: pytest -->`` is a test module for the pytest plugin and is run
by tests/test_pytest_plugin.py instead.
"""

from __future__ import annotations

import ast
import concurrent.futures
import contextlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._snippets import ROOT, Snippet, snippets

pytestmark = pytest.mark.newest  # docs and packaging: one run is enough


SNIPPETS = snippets()
QUICKSTART = next(s for s in SNIPPETS if s.page.name == "README.md" and "asyncio.run" in s.code)


def test_there_are_snippets_in_the_readme_and_every_guide() -> None:
    pages = {s.page.relative_to(ROOT).as_posix() for s in SNIPPETS}
    assert {
        "README.md",
        "docs/guides/pagination.md",
        "docs/guides/errors.md",
        "docs/guides/waiting.md",
        "docs/guides/export.md",
        "docs/guides/emulator.md",
    } <= pages


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.id)
def test_snippet_is_a_complete_program(snippet: Snippet) -> None:
    # No PyCF_ALLOW_TOP_LEVEL_AWAIT: a user pasting it into a file must be able to run it.
    tree = compile(snippet.code, snippet.id, "exec", flags=ast.PyCF_ONLY_AST)
    assert isinstance(tree, ast.Module)
    if snippet.kind == "script":
        assert "asyncio.run(main())" in snippet.code


def test_snippets_have_no_undefined_names(tmp_path: Path) -> None:
    for n, snippet in enumerate(SNIPPETS):
        (tmp_path / f"snippet_{n}.py").write_text(snippet.code)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- running them ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def emulator_process(*flags: str) -> Iterator[dict[str, str]]:
    """``python -m realtimekit_async emulator --port 0 FLAGS``; yields the variables it printed.

    Those are its ``export NAME=value`` lines, plus ``REALTIMEKIT_WEBHOOK_KEY_URL``
    from its "webhook public key" line.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtimekit_async", "emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        env: dict[str, str] = {}
        while "REALTIMEKIT_APP_ID" not in env:
            raw = proc.stdout.readline()
            assert raw, "the emulator exited before announcing itself"
            line = raw.strip()
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = value
            elif line.startswith("webhook public key:"):
                env["REALTIMEKIT_WEBHOOK_KEY_URL"] = line.split(":", 1)[1].strip()
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def _run(snippet: Snippet, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run a snippet as a script in ``cwd`` (warnings are errors); exit code, stdout, stderr."""
    cwd.mkdir()
    script = cwd / "snippet.py"
    script.write_text(snippet.code)
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout, result.stderr


def check_quickstart_output(stdout: str) -> None:
    recording, done, total, uploaded = stdout.splitlines()
    assert recording.startswith("recording ")
    status, size, *_ = done.split()
    assert status == "UPLOADED"
    assert int(size) > 0
    assert total == "1001 recordings in all"  # 1000 seeded, and the Quickstart's
    assert int(uploaded.split()[0]) > 0


def test_every_snippet_runs_against_the_emulator(tmp_path: Path) -> None:
    """All at once: the Quickstart on the emulator as the README starts it, the rest on a fast one.

    The README shows the emulator's default exports; only the port differs here.
    The other snippets share an emulator that runs 20 times faster and sends its
    webhooks to ``$PORT``, where the webhook snippet listens.
    """
    port = _free_port()
    others = [s for s in snippets("script") if s != QUICKSTART]
    assert len(others) >= 6
    readme = (ROOT / "README.md").read_text()
    with (
        emulator_process() as defaults,
        emulator_process(
            *("--speed", "20", "--recordings", "200"),
            *("--webhook-url", f"http://127.0.0.1:{port}/webhooks"),
        ) as fast,
    ):
        for name in ("REALTIMEKIT_BASE_URL", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"):
            shown = re.sub(r":[0-9]+/", ":8788/", defaults[name])
            assert f"export {name}={shown}\n" in readme
        assert f"export REALTIMEKIT_APP_ID={defaults['REALTIMEKIT_APP_ID']}\n" in readme

        jobs = [(QUICKSTART, defaults, tmp_path / "quickstart")]
        jobs += [
            (s, {**fast, "PORT": str(port)}, tmp_path / f"snippet_{n}")
            for n, s in enumerate(others)
        ]
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            (code, stdout, stderr), *rest = pool.map(lambda job: _run(*job), jobs)
    assert code == 0, stderr
    check_quickstart_output(stdout)
    failures = [
        f"{snippet.id} exited {code}:\n{out}{err}"
        for snippet, (code, out, err) in zip(others, rest, strict=True)
        if code != 0
    ]
    assert not failures, "\n\n".join(failures)
