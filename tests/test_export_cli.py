"""``realtimekit export``: summary, JSON, progress, exit codes."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from realtimekit_async import emulator as emulator_package
from realtimekit_async._cli import build_parser
from realtimekit_async.emulator import Emulator, _storage
from realtimekit_async.export import MANIFEST_NAME

from ._support import cli
from ._support import emulator_flags as flags


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(
        recordings=30, meetings=6, seed=3, speed=0, bytes_per_second=2, url_ttl=90 * 86400.0
    ) as emulator:
        yield emulator


def downloadable(emu: Emulator, kinds: tuple[str, ...] = ("video", "audio")) -> int:
    return sum(
        emu.file_size(rid, kind) is not None for rid in emu.store.recordings for kind in kinds
    )


class Terminal(io.StringIO):
    """A stderr that claims to be a terminal, so the rich bar is drawn."""

    def isatty(self) -> bool:
        return True


async def test_export_prints_a_summary_and_plain_progress(emu: Emulator, tmp_path: Path) -> None:
    code, out, err = await cli("export", "--dest", str(tmp_path), *flags(emu))
    total = downloadable(emu)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["RESULT", "COUNT", "SIZE"]
    assert lines[1].split()[:2] == ["exported", str(total)]
    assert lines[2].split()[:2] == ["skipped", "0"]
    assert lines[3].split()[:2] == ["failed", "0"]
    assert lines[-1].endswith("downloaded")
    # Not a terminal: plain progress lines, the last one complete.
    assert err.splitlines()[-1].startswith(f"export: {total}/{total} files")
    assert len((tmp_path / MANIFEST_NAME).read_bytes().splitlines()) == total


async def test_export_json_and_rerun(emu: Emulator, tmp_path: Path) -> None:
    code, out, _ = await cli("export", "--dest", str(tmp_path), "--json", *flags(emu))
    assert code == 0
    (line,) = out.splitlines()
    first = json.loads(line)
    assert set(first) == {"exported", "skipped", "failed", "expired", "ignored", "bytes"}
    assert len(first["exported"]) == downloadable(emu)
    assert first["failed"] == []
    assert {"recording_id", "kind", "path", "bytes", "sha256"} <= set(first["exported"][0])

    code, out, _ = await cli("export", "--dest", str(tmp_path), "--json", *flags(emu))
    second = json.loads(out)
    assert code == 0
    assert second["exported"] == []
    assert len(second["skipped"]) == len(first["exported"])
    assert second["bytes"] == 0


async def test_filters_and_no_audio_pass_through(emu: Emulator, tmp_path: Path) -> None:
    invoked = sorted(
        (r.invoked_ms, r.id)
        for r in emu.store.recordings.values()
        if emu.file_size(r.id, "video") is not None
    )
    since = datetime.fromtimestamp(invoked[5][0] / 1000, UTC)
    until = datetime.fromtimestamp(invoked[12][0] / 1000, UTC)
    code, out, _ = await cli(
        "export",
        "--dest",
        str(tmp_path),
        "--json",
        "--no-audio",
        "--concurrency",
        "2",
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
        *flags(emu),
    )
    doc = json.loads(out)
    assert code == 0
    assert {e["recording_id"] for e in doc["exported"]} == {rid for _, rid in invoked[5:13]}
    assert {e["kind"] for e in doc["exported"]} == {"video"}


async def test_failures_exit_1_and_are_listed(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = downloadable(emu)
    monkeypatch.setattr(_storage, "file_size_for", lambda *_: None)  # every file 404s
    code, out, err = await cli("export", "--dest", str(tmp_path), *flags(emu))
    assert code == 1
    assert out.splitlines()[3].split()[:2] == ["failed", str(files)]
    assert ["RECORDING", "FILE", "REASON"] in [line.split() for line in out.splitlines()]
    assert "404" in out
    assert "X-Signature" not in out + err


async def test_expired_urls_are_their_own_category_and_exit_0(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.advance(91 * 86400)  # every URL is dead by the server's clock
    code, out, _ = await cli("export", "--dest", str(tmp_path), *flags(emu))
    assert code == 0
    rows = [line.split()[:2] for line in out.splitlines()]
    assert ["failed", "0"] in rows
    assert ["expired", str(downloadable(emu))] in rows


async def test_rich_progress_bar_on_a_terminal(emu: Emulator, tmp_path: Path) -> None:
    code, _, err = await cli("export", "--dest", str(tmp_path), *flags(emu), err=Terminal())
    total = downloadable(emu)
    assert code == 0
    assert f"{total}/{total} files" in err
    assert "export:" not in err  # the bar, not the plain lines


async def test_plain_lines_without_rich(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("rich", "rich.console", "rich.progress"):
        monkeypatch.setitem(sys.modules, module, None)
    code, _, err = await cli("export", "--dest", str(tmp_path), *flags(emu), err=Terminal())
    assert code == 0
    assert err.splitlines()[-1].startswith("export: ")


def test_help_documents_time_windows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--help"])
    text = capsys.readouterr().out
    assert "--since/--until" in text
    assert "separate" in text
    assert "workers" in text


def test_bad_concurrency_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["export", "--dest", "x", "--concurrency", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_dest_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["export"])
    assert exit_info.value.code == 2
    assert "--dest" in capsys.readouterr().err


class SkewedSmallEmulator(Emulator):
    """The embedded emulator with small files, its clock three days ahead of ours.

    Only the file sizes (to keep the test cheap) and the start time are changed;
    the speed (30x) and the seeding are the CLI's own.
    """

    def __init__(self, **options: Any) -> None:
        ahead = datetime.now(UTC) + timedelta(days=3)
        super().__init__(**{**options, "bytes_per_second": 2, "start_time": ahead})


async def test_emulator_export_twice_exits_0_and_the_rerun_skips_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator_package, "Emulator", SkewedSmallEmulator)
    argv = ("export", "--emulator", "--emulator-recordings", "120", "--dest", str(tmp_path))

    code, out, err = await cli(*argv, "--json")
    first = json.loads(out)
    assert code == 0, first["failed"]
    assert first["failed"] == []
    assert first["exported"]
    # URLs the server sees as expired (its clock runs ahead) are their own category.
    assert first["expired"]
    # Progress counts what the run fetches: not the URLs found expired beforehand.
    done, total = map(int, err.splitlines()[-1].split()[1].split("/"))
    assert done == total
    assert len(first["exported"]) <= total < len(first["exported"]) + len(first["expired"])

    code, out, err = await cli(*argv)
    assert code == 0
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:6]}
    assert rows["exported"] == "0"
    assert rows["skipped"] == str(len(first["exported"]))
    assert rows["failed"] == "0"
    assert out.splitlines()[-1] == "0 B downloaded"


def test_seeded_data_depends_on_the_seed_not_the_start_time() -> None:
    def seeded(start: datetime) -> set[tuple[object, ...]]:
        emu = Emulator(recordings=200, seed=11, start_time=start)
        return {
            (r.id, r.meeting_id, r.output_file_name, r.file_size, r.status, r.has_audio)
            for r in emu.store.recordings.values()
        }

    now = datetime.now(UTC)
    assert seeded(now) == seeded(now + timedelta(days=9, seconds=7))


def test_no_seeded_url_expires_soon_after_the_start() -> None:
    # A 30x clock would otherwise expire some while the first export runs, and a
    # restart would bring new ones: the rerun would have files to fetch.
    start = datetime.now(UTC)
    emu = Emulator(recordings=2000, seed=5, start_time=start)
    now_ms = emu.clock.now_ms()
    left = [r.expiry_ms - now_ms for r in emu.store.recordings.values() if r.expiry_ms]
    assert any(ms <= 0 for ms in left)
    assert any(ms > 0 for ms in left)
    assert not any(0 < ms < 6 * 3600 * 1000 for ms in left)
