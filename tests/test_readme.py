"""Every Python snippet of the README and the docs runs, against the emulator.

A snippet is a ```python block. It must be a complete program (imports, no
top-level ``await``, no undefined names) that reads its connection from the
variables the README tells users to set. The README's Quickstart runs against
``realtimekit emulator`` started as the README says, with no flags but a free
port; every other snippet runs, all at once, against one emulator that runs 20
times faster and delivers webhooks to ``$PORT``. A block preceded by
``<!-- snippet: pytest -->`` is a test module for the pytest plugin and is run
by tests/test_pytest_plugin.py instead.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(<!-- snippet: (?P<kind>\w+) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


@attrs.frozen
class Snippet:
    page: Path
    line: int
    code: str
    kind: str  # "script" or "pytest"

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def snippets(kind: str | None = None) -> list[Snippet]:
    """The Python blocks of the README and the docs, in page order."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code")) + 1
            found.append(Snippet(page, line, match["code"], match["kind"] or "script"))
    return [s for s in found if kind is None or s.kind == kind]


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


@attrs.frozen
class Running:
    env: dict[str, str]  #: what the emulator printed to export, plus the key URL
    lines: list[str]


@pytest.fixture
def emulator_process(request: pytest.FixtureRequest) -> Iterator[Running]:
    """``python -m realtimekit_async emulator --port 0`` plus the given flags."""
    flags: list[str] = getattr(request, "param", [])
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtimekit_async", "emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        env: dict[str, str] = {}
        while "REALTIMEKIT_APP_ID" not in env:
            line = proc.stdout.readline()
            assert line, "the emulator exited before announcing itself"
            lines.append(line.rstrip("\n"))
            if line.strip().startswith("export "):
                name, _, value = line.strip().removeprefix("export ").partition("=")
                env[name] = value
            elif line.strip().startswith("webhook public key:"):
                env["REALTIMEKIT_WEBHOOK_KEY_URL"] = line.split(":", 1)[1].strip()
        yield Running(env, lines)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def _run(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = cwd / "snippet.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_quickstart_runs_against_the_emulator_at_its_defaults(
    emulator_process: Running, tmp_path: Path
) -> None:
    # The README shows the emulator's default exports; only the port differs here.
    readme = (ROOT / "README.md").read_text()
    for name, value in emulator_process.env.items():
        if name != "REALTIMEKIT_WEBHOOK_KEY_URL":
            assert f"export {name}={re.sub(r':[0-9]+/', ':8788/', value)}\n" in readme
    result = _run(QUICKSTART.code, emulator_process.env, tmp_path)
    assert result.returncode == 0, result.stderr
    recording, done, total, uploaded = result.stdout.splitlines()
    assert recording.startswith("recording ")
    status, size, *_ = done.split()
    assert status == "UPLOADED"
    assert int(size) > 0
    assert total == "1001 recordings in all"
    assert int(uploaded.split()[0]) > 0


PORT = _free_port()


@pytest.mark.parametrize(
    "emulator_process",
    [
        [
            "--speed",
            "20",
            "--recordings",
            "200",
            "--webhook-url",
            f"http://127.0.0.1:{PORT}/webhooks",
        ]
    ],
    indirect=True,
)
def test_every_other_snippet_runs(emulator_process: Running, tmp_path: Path) -> None:
    scripts = [s for s in snippets("script") if s != QUICKSTART]
    env = {**emulator_process.env, "PORT": str(PORT)}

    async def run_all() -> list[tuple[Snippet, int, str]]:
        async def one(n: int, snippet: Snippet) -> tuple[Snippet, int, str]:
            cwd = tmp_path / f"snippet_{n}"
            cwd.mkdir()
            result = await asyncio.to_thread(_run, snippet.code, env, cwd)
            return snippet, result.returncode, result.stdout + result.stderr

        return await asyncio.gather(*(one(n, s) for n, s in enumerate(scripts)))

    failures = [
        f"{snippet.id} exited {code}:\n{output}"
        for snippet, code, output in asyncio.run(run_all())
        if code != 0
    ]
    assert not failures, "\n\n".join(failures)
    assert len(scripts) >= 6
