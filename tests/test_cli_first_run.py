"""The CLI flows a newcomer tries first: listing, waiting, dates, errors, help, the emulator."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from realtimekit_async import RealtimeKit
from realtimekit_async._cli import build_parser, main, parse_when, run
from realtimekit_async.emulator import Emulator

from ._support import emulator_flags as flags
from ._support import recording_json

ROOT = Path(__file__).resolve().parent.parent
NOWHERE = "http://127.0.0.1:9/client/v4"


async def cli(*argv: str, out: io.StringIO | None = None) -> tuple[int, str, str]:
    out = out or io.StringIO()
    err = io.StringIO()
    code = await run(build_parser().parse_args(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(recordings=30, meetings=5, seed=3, speed=0) as emulator:
        yield emulator


# -- dates ---------------------------------------------------------------------------------


def test_a_date_alone_covers_the_whole_day() -> None:
    assert parse_when("2026-11-30") == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_when("2026-11-30", end_of_day=True) == datetime(
        2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC
    )


def test_a_time_is_used_as_given_and_naive_means_utc() -> None:
    assert parse_when("2026-11-30T10:15", end_of_day=True) == datetime(
        2026, 11, 30, 10, 15, tzinfo=UTC
    )
    plus_two = timezone(timedelta(hours=2))
    assert parse_when("2026-11-30T00:00+02:00") == datetime(2026, 11, 30, tzinfo=plus_two)
    with pytest.raises(argparse.ArgumentTypeError, match="not an ISO 8601 date or time"):
        parse_when("yesterday")


async def test_until_a_date_lists_recordings_of_that_day() -> None:
    noon = datetime(2026, 11, 30, 12, tzinfo=UTC)
    async with Emulator(recordings=60, seed=3, speed=0, start_time=noon) as emu:
        invoked = sorted(r.invoked_ms for r in emu.store.recordings.values())
        day = datetime.fromtimestamp(invoked[len(invoked) // 2] / 1000, UTC).date()
        start = datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000
        end = start + 86_400_000
        wanted = {r.id for r in emu.store.recordings.values() if r.invoked_ms < end}
        later = {r.id for r in emu.store.recordings.values() if r.invoked_ms >= end}
        assert later  # the bound really cuts the list
        assert any(start < ms < end for ms in invoked)  # and midnight would lose some
        code, out, _ = await cli(
            "recordings", "list", "--all", "--json", "--until", day.isoformat(), *flags(emu)
        )
    assert code == 0
    assert {json.loads(line)["id"] for line in out.splitlines()} == wanted


# -- listing streams ---------------------------------------------------------------------------


class FirstLine(io.StringIO):
    """An output that notes when the first line has been written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = asyncio.Event()

    def write(self, text: str) -> int:
        if "\n" in text:
            self.seen.set()
        return super().write(text)


@pytest.fixture
async def slow_second_page() -> AsyncIterator[tuple[str, FirstLine, list[dict[str, str]]]]:
    """An API whose page 2 is answered only once the CLI has printed its first line."""
    out = FirstLine()
    queries: list[dict[str, str]] = []

    async def listing(request: web.Request) -> web.Response:
        queries.append(dict(request.query))
        page = int(request.query["page_no"])
        if page == 2:
            try:
                await asyncio.wait_for(out.seen.wait(), timeout=10)
            except TimeoutError:
                return web.json_response({"success": False}, status=500)
        data = [recording_json(id=f"rec-{page}-{n}", status="UPLOADED") for n in range(3)]
        paging = {"start_offset": 3 * page - 2, "end_offset": 3 * page, "total_count": 6}
        return web.json_response({"success": True, "data": data, "paging": paging})

    app = web.Application()
    app.router.add_get("/client/v4/accounts/acc/realtime/kit/app/recordings", listing)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/client/v4", out, queries
    finally:
        await runner.cleanup()


CONNECTION = ["--api-token", "t", "--account-id", "acc", "--app-id", "app"]


@pytest.mark.parametrize("as_json", [True, False])
async def test_list_all_prints_the_first_page_before_the_walk_ends(
    slow_second_page: tuple[str, FirstLine, list[dict[str, str]]], as_json: bool
) -> None:
    base, out, queries = slow_second_page
    argv = ["recordings", "list", "--all", "--per-page", "3", "--base-url", base, *CONNECTION]
    code, text, err = await cli(*argv, *(["--json"] if as_json else []), out=out)
    assert (code, err) == (0, "")
    lines = text.splitlines()
    if as_json:
        assert [json.loads(line)["id"] for line in lines] == [
            f"rec-{p}-{n}" for p in (1, 2) for n in range(3)
        ]
    else:
        assert lines[0].split()[:2] == ["ID", "STATUS"]
        assert [line.split()[0] for line in lines[1:-1]] == [
            f"rec-{p}-{n}" for p in (1, 2) for n in range(3)
        ]
        assert lines[-1] == "6 recording(s)"
    assert sorted(q["page_no"] for q in queries) == ["1", "2"]


async def test_list_asks_for_100_per_page_and_sorts(emu: Emulator) -> None:
    code, out, _ = await cli("recordings", "list", "--json", "--sort-order", "asc", *flags(emu))
    assert code == 0
    times = [json.loads(line)["invoked_time"] for line in out.splitlines()]
    assert len(times) == 30  # one page of up to 100
    assert times == sorted(times)
    code, out, _ = await cli("recordings", "list", "--json", "--sort-order", "DESC", *flags(emu))
    assert [json.loads(line)["invoked_time"] for line in out.splitlines()] == sorted(
        times, reverse=True
    )
    listing = build_parser().parse_args(["recordings", "list"])
    assert listing.per_page == 100


async def test_an_empty_table_still_has_its_header(emu: Emulator) -> None:
    code, out, _ = await cli("recordings", "list", "--meeting-id", "nobody", *flags(emu))
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["ID", "STATUS"]
    assert out.splitlines()[-1] == "0 recording(s)"


# -- download URLs -------------------------------------------------------------------------------


async def test_get_hides_the_url_signature_unless_asked(emu: Emulator) -> None:
    rec_id = next(r.id for r in emu.store.recordings.values() if r.status == "UPLOADED")
    full = emu.download_url(rec_id)
    assert full is not None
    assert "X-Signature=" in full
    code, out, _ = await cli("recordings", "get", rec_id, "--json", *flags(emu))
    assert code == 0
    assert "X-Signature" not in out
    assert json.loads(out)["download_url"] == full.split("?")[0] + "?…"
    code, out, _ = await cli("recordings", "list", "--json", *flags(emu))
    assert "X-Signature" not in out
    code, out, _ = await cli("recordings", "get", rec_id, "--json", "--show-urls", *flags(emu))
    assert json.loads(out)["download_url"] == full
    code, out, _ = await cli("recordings", "get", rec_id, "--show-urls", *flags(emu))
    assert full in out


# -- wait and start-track ----------------------------------------------------------------------


async def test_wait_returns_the_recording_in_the_status() -> None:
    async with Emulator(speed=40) as emu:
        code, out, _ = await cli("recordings", "start", "m-wait", "--json", *flags(emu))
        rec_id = json.loads(out)["id"]
        code, out, err = await cli(
            "recordings",
            "wait",
            rec_id,
            "--status",
            "recording",
            "--poll-interval",
            "0.02",
            "--json",
            *flags(emu),
        )
        assert (code, err) == (0, "")
        assert json.loads(out)["status"] == "RECORDING"


async def test_wait_timeout_and_failure_are_one_line_exit_1() -> None:
    async with Emulator(speed=0) as emu:
        code, out, _ = await cli("recordings", "start", "m-wait", "--json", *flags(emu))
        rec_id = json.loads(out)["id"]
        argv = ["recordings", "wait", rec_id, "--poll-interval", "0.01", *flags(emu)]
        code, out, err = await cli(*argv, "--timeout", "0.1")
        assert (code, out) == (1, "")
        assert err == f"realtimekit: error: recording {rec_id} did not reach UPLOADED within 0.1s\n"
        await cli("recordings", "stop", rec_id, *flags(emu))  # under 5 s recorded: ERRORED
        code, out, err = await cli(*argv)
        assert (code, out) == (1, "")
        assert err.count("\n") == 1
        assert "ERRORED" in err


async def test_start_track_sends_the_layers(emu: Emulator) -> None:
    code, out, err = await cli(
        "recordings",
        "start-track",
        "m-track",
        "--layer",
        "speaker",
        "--layer",
        "screen",
        "--file-name-prefix",
        "t",
        "--json",
        *flags(emu),
    )
    assert (code, err) == (0, "")
    rec = emu.store.recordings[json.loads(out)["id"]]
    assert rec.kind == "track"
    assert rec.layers is not None
    assert sorted(rec.layers) == ["screen", "speaker"]
    assert emu.stats.starts_by_meeting == {"m-track": 1}


# -- errors a newcomer meets ---------------------------------------------------------------------


@pytest.mark.parametrize("dest", ["https://host/path", "r2+x://y", "ftp://b/x"])
def test_url_like_dest_is_refused(
    dest: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["export", "--dest", dest, "--emulator"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "realtimekit export: error: argument --dest: exports go to a local directory "
        f"or s3://bucket/prefix, not {dest!r}\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_missing_app_id_names_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REALTIMEKIT_APP_ID", raising=False)
    code = main(
        ["recordings", "list", "--api-token", "t", "--account-id", "a", "--base-url", NOWHERE]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        "realtimekit: error: app_id: missing: pass --app-id or set REALTIMEKIT_APP_ID\n"
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_emulator_on_a_busy_port_is_one_line(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emulator", "--port", str(busy_port), "--recordings", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(
        f"realtimekit: error: cannot serve the emulator on 127.0.0.1:{busy_port}: "
    )


# -- help text --------------------------------------------------------------------------------


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


SWITCHES = (argparse._StoreTrueAction, argparse._HelpAction, argparse._VersionAction)


def test_every_flag_has_help_and_shows_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "500")  # no line wrapping inside a default
    checked = 0
    for parser in _parsers(build_parser()):
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not action.option_strings:
                continue
            assert action.help, f"{parser.prog} {action.option_strings[0]} has no help"
            if isinstance(action, SWITCHES) or action.required:
                continue
            helptext = parser._get_formatter()._expand_help(action)
            assert "default" in helptext, f"{parser.prog} {action.option_strings[0]}: {helptext}"
            if action.default is not None and action.default is not False:
                assert f"(default: {action.default})" in text, (parser.prog, action.dest)
            checked += 1
    assert checked > 40


# -- the standalone emulator and the webhook example -------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _announced(proc: subprocess.Popen[str]) -> dict[str, str]:
    """The emulator's `export NAME=value` lines, read up to the last one."""
    assert proc.stdout is not None
    exports: dict[str, str] = {}
    while "REALTIMEKIT_APP_ID" not in exports:
        line = proc.stdout.readline()
        assert line, "the emulator exited before announcing itself"
        if line.strip().startswith("export "):
            name, _, value = line.strip().removeprefix("export ").partition("=")
            exports[name] = value
    return exports


def test_emulator_webhook_url_drives_the_example_app() -> None:
    """`realtimekit emulator --webhook-url` and examples/webhook_app.py, run as a user would."""
    app_port = _free_port()
    emulator = subprocess.Popen(
        [
            *(sys.executable, "-m", "realtimekit_async", "emulator"),
            *("--port", "0", "--recordings", "0", "--speed", "20"),
            *("--webhook-url", f"http://127.0.0.1:{app_port}/webhooks"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    app: subprocess.Popen[bytes] | None = None
    try:
        env = _announced(emulator)
        origin = env["REALTIMEKIT_BASE_URL"].removesuffix("/client/v4")
        app = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "webhook_app.py"), "--port", str(app_port)],
            env={
                **os.environ,
                **env,
                "REALTIMEKIT_WEBHOOK_KEY_URL": f"{origin}/.well-known/webhooks.json",
            },
            stderr=subprocess.DEVNULL,
        )
        answer = asyncio.run(_record_and_wait(env, f"http://127.0.0.1:{app_port}"))
    finally:
        running: list[subprocess.Popen[Any]] = [emulator] if app is None else [app, emulator]
        for proc in running:
            proc.terminate()
            proc.wait(timeout=10)
        if emulator.stdout:
            emulator.stdout.close()
    assert answer["status"] == "UPLOADED"
    assert answer["via"] == "webhook"


async def _record_and_wait(env: dict[str, str], app_url: str) -> dict[str, Any]:
    """Record a few emulated seconds, then ask the example app to wait for UPLOADED."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):  # up to 30 s for the app to start on a busy machine
            try:
                async with http.get(app_url):
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        async with RealtimeKit(
            api_token=env["CLOUDFLARE_API_TOKEN"],
            account_id=env["CLOUDFLARE_ACCOUNT_ID"],
            app_id=env["REALTIMEKIT_APP_ID"],
            base_url=env["REALTIMEKIT_BASE_URL"],
        ) as client:
            rec = await client.recordings.start("webhook-meeting")
            await client.recordings.wait_for(rec.id, "RECORDING", poll_interval=0.02)
            await asyncio.sleep(0.4)  # 8 emulated seconds recorded
            await client.recordings.stop(rec.id)
        url = f"{app_url}/recordings/{rec.id}/wait"
        async with http.get(url, params={"status": "UPLOADED", "timeout": "20"}) as reply:
            answer: dict[str, Any] = await reply.json()
            assert reply.status == 200, answer
    assert answer["id"] == rec.id
    return answer
