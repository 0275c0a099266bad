"""The README's Python examples: every block compiles, and the quickstart runs."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_there_are_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_block_compiles(block: str) -> None:
    compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_quickstart_runs_against_the_emulator(tmp_path: Path) -> None:
    quickstart = next(b for b in BLOCKS if "asyncio.run(main())" in b)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "realtimekit_async", "emulator", "--port", "0", "--speed", "120"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        lines = [emulator.stdout.readline() for _ in range(7)]
        announced = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        env = {
            **os.environ,
            "CLOUDFLARE_API_TOKEN": announced["token"],
            "CLOUDFLARE_ACCOUNT_ID": announced["account_id"],
            "REALTIMEKIT_BASE_URL": announced["RealtimeKit emulator API"],
        }
        script = tmp_path / "quickstart.py"
        script.write_text(quickstart)
        result = subprocess.run(
            [sys.executable, "-W", "error", str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        if emulator.stdout:
            emulator.stdout.close()
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    url, size = first.split()
    assert url.startswith("http://127.0.0.1:")
    assert int(size) > 0
    assert rest
    assert all(line.split()[1] in {"UPLOADED", "ERRORED"} for line in rest)
