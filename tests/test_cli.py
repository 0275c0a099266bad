"""The ``realtimekit`` command line: output, exit codes and one-line errors."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from realtimekit_async._cli import build_parser, main, run, safe_url, table
from realtimekit_async.emulator import Emulator

from ._support import emulator_flags as flags


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(recordings=37, meetings=5, seed=3, speed=0) as emulator:
        yield emulator


async def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(build_parser().parse_args(argv), out, err)
    return code, out.getvalue(), err.getvalue()


async def test_list_one_page_as_table(emu: Emulator) -> None:
    code, out, err = await cli("recordings", "list", "--per-page", "10", *flags(emu))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "MEETING", "INVOKED", "DURATION", "SIZE"]
    assert len(lines) == 1 + 10 + 1
    assert lines[-1] == "10 recording(s)"
    # Aligned: every row starts its STATUS column at the same offset.
    status_col = lines[0].index("STATUS")
    assert all(line[status_col - 2 : status_col] == "  " for line in lines[1:-1])


async def test_list_all_as_json_lines(emu: Emulator) -> None:
    code, out, _ = await cli(
        "recordings", "list", "--all", "--json", "--per-page", "10", *flags(emu)
    )
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 37
    assert len({d["id"] for d in docs}) == 37
    assert sorted(d["id"] for d in docs) == sorted(emu.store.recordings)


async def test_list_filters(emu: Emulator) -> None:
    code, out, _ = await cli(
        "recordings", "list", "--all", "--json", "--status", "uploaded", *flags(emu)
    )
    assert code == 0
    statuses = {json.loads(line)["status"] for line in out.splitlines()}
    assert statuses == {"UPLOADED"}


async def test_lifecycle_commands(emu: Emulator) -> None:
    code, out, _ = await cli("recordings", "start", "cli-meeting", "--json", *flags(emu))
    assert code == 0
    started = json.loads(out)
    assert started["status"] == "INVOKED"
    code, out, _ = await cli("recordings", "active", "cli-meeting", "--json", *flags(emu))
    assert json.loads(out)["id"] == started["id"]
    emu.advance(10)
    code, out, _ = await cli("recordings", "stop", started["id"], "--json", *flags(emu))
    assert json.loads(out)["status"] == "UPLOADING"
    emu.advance(10)
    code, out, _ = await cli("recordings", "get", started["id"], *flags(emu))
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines()[1:])
    assert fields["id"] == started["id"]
    assert fields["status"] == "UPLOADED"
    # The presigned URL is shown without its signature.
    assert "X-Signature" not in out
    assert fields["download_url"].endswith("?…")


async def test_not_found_is_one_line(emu: Emulator) -> None:
    code, out, err = await cli("recordings", "get", "no-such-id", *flags(emu))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("realtimekit: error: GET /client/v4/accounts/")
    assert "HTTP 404" in err


async def test_bad_token_is_one_line(emu: Emulator) -> None:
    argv = [*flags(emu)]
    argv[argv.index(emu.token)] = "wrong-token"
    code, _, err = await cli("recordings", "list", *argv)
    assert code == 1
    assert err.count("\n") == 1
    assert "HTTP 401" in err
    assert "wrong-token" not in err


async def test_validation_error_exit_2(emu: Emulator) -> None:
    code, _, err = await cli("recordings", "start", "m", "--max-seconds", "10", *flags(emu))
    assert code == 2
    assert (
        err == "realtimekit: error: max_seconds: must be an integer between 60 and 86400, got 10\n"
    )
    assert emu.stats.starts_by_meeting == {}


@pytest.mark.parametrize(
    "argv",
    [
        ["recordings", "list", "--per-page", "0"],
        ["recordings", "list", "--status", "FINISHED"],
        ["recordings", "list", "--since", "yesterday"],
        ["recordings", "frobnicate"],
        ["recordings", "get"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("realtimekit ")


def test_missing_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    assert main(["recordings", "list"]) == 2
    assert capsys.readouterr().err == (
        "realtimekit: error: api_token: missing: pass --api-token or set CLOUDFLARE_API_TOKEN\n"
    )


def test_embedded_emulator_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["recordings", "list", "--emulator", "--emulator-recordings", "12", "--all", "--json"])
        == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 12


def test_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.count("uploaded ") == 3
    assert "1203 recordings listed over 13 pages" in out


def test_emulator_command_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtimekit_async", "emulator", "--port", "0", "--recordings", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("RealtimeKit emulator API:")
        assert "http://127.0.0.1:" in first
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def test_table_and_safe_url() -> None:
    assert table(("A", "BB"), [("xxx", "y")]) == "A    BB\nxxx  y"
    assert (
        safe_url("https://h.example/a/b.mp4?X-Signature=s&X-Expires=1")
        == "https://h.example/a/b.mp4?…"
    )
    assert safe_url(None) == "-"


def test_no_event_loop_left_running() -> None:
    # main() runs its own loop; nothing of it may leak into the caller.
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
