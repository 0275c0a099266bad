"""The ``realtimekit`` command line.

``realtimekit recordings list|get|start|start-track|stop|pause|resume|wait|active``,
``export``, ``sync``, ``emulator`` and ``demo``. Human output is an aligned table; ``--json``
prints JSON lines. Download URLs lose their query (a credential) unless
``--show-urls``. Expected failures (bad token, not found, bad argument, a failed
wait) are one line on stderr and a non-zero exit: 2 for bad input, 1 for the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, NoReturn, TextIO

from ._client import RealtimeKit
from ._config import ENV_ACCOUNT_ID, ENV_API_TOKEN, ENV_APP_ID, ENV_BASE_URL
from ._converter import converter
from ._exceptions import RealtimeKitError, ValidationError
from ._export_plan import DEFAULT_SYNC_LAG
from ._models import (
    Recording,
    RecordingPage,
    RecordingStatus,
    SortBy,
    SortOrder,
    TrackLayer,
    TrackOutput,
    TrackOutputType,
)
from ._pagination import RecordingPaginator
from ._sansio import encode_json, redact
from ._version import __version__
from .emulator._emulator import DEFAULT_ACCOUNT_ID, DEFAULT_APP_ID, DEFAULT_TOKEN, Emulator
from .export import (
    ExportProgress,
    ExportReport,
    ProgressCallback,
    export_recordings,
    sync_recordings,
)

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are a single line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# -- output -------------------------------------------------------------------------------


def safe_url(url: str | None) -> str:
    """A presigned URL without its query (the signature is a credential)."""
    return redact(url) if url else "-"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, headers first."""
    body = [list(headers), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in body) for i in range(len(headers))]
    return _render(body, widths)


def _render(rows: Iterable[Sequence[str]], widths: Sequence[int]) -> str:
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


class TableWriter:
    """A table printed in chunks as rows arrive; columns widen as needed, never narrow."""

    def __init__(self, headers: Sequence[str], out: TextIO) -> None:
        self._headers = list(headers)
        self._widths = [len(h) for h in headers]
        self._rows: list[list[str]] = []
        self._out = out
        self._started = False

    def add(self, row: Sequence[str]) -> None:
        self._rows.append(list(row))

    def flush(self, *, force_header: bool = False) -> None:
        """Print the rows added since the last flush (the header goes before the first)."""
        if not self._rows and (self._started or not force_header):
            return
        rows = self._rows if self._started else [self._headers, *self._rows]
        self._widths = [max(w, *(len(r[i]) for r in rows)) for i, w in enumerate(self._widths)]
        print(_render(rows, self._widths), file=self._out)
        self._rows, self._started = [], True


LIST_HEADERS = ("ID", "STATUS", "MEETING", "INVOKED", "DURATION", "SIZE")


def list_row(rec: Recording) -> list[str]:
    return [
        rec.id,
        str(rec.status),
        rec.meeting.id if rec.meeting else "-",
        _when(rec.invoked_time),
        "-" if rec.recording_duration is None else f"{rec.recording_duration}s",
        _size(rec.file_size),
    ]


def _url(url: str | None, show_urls: bool) -> str:
    return (url or "-") if show_urls else safe_url(url)


def detail(rec: Recording, *, show_urls: bool = False) -> str:
    """A two-column view of one recording (download URLs without their query, unless asked)."""
    rows = [
        ("id", rec.id),
        ("status", str(rec.status)),
        ("meeting", rec.meeting.id if rec.meeting else "-"),
        ("output_file_name", rec.output_file_name or "-"),
        ("invoked_time", _when(rec.invoked_time)),
        ("started_time", _when(rec.started_time)),
        ("stopped_time", _when(rec.stopped_time)),
        (
            "recording_duration",
            "-" if rec.recording_duration is None else f"{rec.recording_duration}s",
        ),
        ("file_size", _size(rec.file_size)),
        ("download_url", _url(rec.download_url, show_urls)),
        ("audio_download_url", _url(rec.audio_download_url, show_urls)),
        ("download_url_expiry", _when(rec.download_url_expiry)),
    ]
    return table(("FIELD", "VALUE"), rows)


_URL_FIELDS = ("download_url", "audio_download_url")


def json_line(rec: Recording, *, show_urls: bool = False) -> str:
    """One recording as a JSON line; download URLs lose their query unless ``show_urls``."""
    doc = converter.unstructure(rec)
    if not show_urls:
        for key in _URL_FIELDS:
            if doc.get(key):
                doc[key] = safe_url(doc[key])
    return encode_json(doc).decode()


# -- arguments ------------------------------------------------------------------------------


def parse_when(text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or time for ``--since``/``--until``, as an aware datetime.

    A date and time is used as given; without an offset it is UTC. A date alone
    means that whole day (UTC): its first instant, or with ``end_of_day`` its
    last, so ``--until 2025-01-31`` includes all of January 31. Raises
    :class:`argparse.ArgumentTypeError` for anything else.
    """
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(
            day, datetime.max.time() if end_of_day else datetime.min.time(), UTC
        )
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _until(text: str) -> datetime:
    return parse_when(text, end_of_day=True)


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_STORE_SCHEMES: Final = ("s3://", "gs://", "az://", "file://")


def _destination(text: str) -> str:
    # Any other "scheme://..." would otherwise become a local directory named "scheme:";
    # gs:// and az:// get the export's own explanation of what to use instead.
    if _URL_SCHEME.match(text) and not text.lower().startswith(_STORE_SCHEMES):
        raise argparse.ArgumentTypeError(
            f"exports go to a local directory or s3://bucket/prefix, not {text!r}"
        )
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """A duration for ``--lag``/``--every``: a number with an optional unit s, m, h or d
    (``90``, ``15m``, ``2h``, ``1.5d``)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration like 90s, 15m, 2h or 1d: {text!r}")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def _add_dest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dest",
        required=True,
        type=_destination,
        metavar="DIR|s3://BUCKET/PREFIX",
        help="destination directory (created if missing), or bucket and prefix "
        "(credentials from AWS_* variables; needs the s3 extra)",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _status(text: str) -> RecordingStatus:
    try:
        return RecordingStatus(text.upper())
    except ValueError:
        known = ", ".join(s.value for s in RecordingStatus)
        raise argparse.ArgumentTypeError(f"unknown status {text!r} (one of {known})") from None


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = not (action.default is None or action.default is False) and (
            action.default != argparse.SUPPRESS
        )
        if shown and action.option_strings and "default" not in text:
            text += " (default: %(default)s)"
        return text


class _DescribedHelpFormatter(_HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The same, keeping the line breaks of a description and epilog."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and docs)."""
    common = _Parser(add_help=False)
    auth = common.add_argument_group("connection (flags win over the environment)")
    auth.add_argument("--api-token", help=f"API token (default: ${ENV_API_TOKEN})")
    auth.add_argument("--account-id", help=f"Cloudflare account id (default: ${ENV_ACCOUNT_ID})")
    auth.add_argument("--app-id", help=f"RealtimeKit app id (default: ${ENV_APP_ID})")
    auth.add_argument(
        "--base-url", help=f"API base URL (default: ${ENV_BASE_URL}, else Cloudflare's)"
    )
    auth.add_argument(
        "--emulator",
        action="store_true",
        help="run against an embedded emulator instead of Cloudflare",
    )
    auth.add_argument(
        "--emulator-recordings",
        type=int,
        default=250,
        metavar="N",
        help="recordings seeded into the embedded emulator",
    )
    common.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    common.add_argument(
        "--show-urls",
        action="store_true",
        help="print download URLs in full, signature included (default: without their query)",
    )

    def command(group: Any, name: str, helptext: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        parser: argparse.ArgumentParser = group.add_parser(name, help=helptext, **kwargs)
        return parser

    parser = _Parser(
        prog="realtimekit",
        description="Cloudflare RealtimeKit recordings.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    recordings = command(commands, "recordings", "list, inspect and control recordings")
    actions = recordings.add_subparsers(dest="action", required=True, parser_class=_Parser)

    listing = command(actions, "list", "list recordings", parents=[common])
    listing.add_argument(
        "--all", action="store_true", help="walk every page, printing as pages arrive"
    )
    listing.add_argument(
        "--status", type=_status, action="append", help="filter (repeatable; default: any)"
    )
    listing.add_argument("--meeting-id", help="only this meeting's recordings (default: all)")
    listing.add_argument("--search", help="meeting id or title contains (default: no search)")
    listing.add_argument(
        "--since",
        type=parse_when,
        metavar="WHEN",
        help="invoked at or after WHEN (ISO 8601; a date alone: from its start; default: no bound)",
    )
    listing.add_argument(
        "--until",
        type=_until,
        metavar="WHEN",
        help="invoked at or before WHEN (ISO 8601; a date alone: to its end; default: no bound)",
    )
    listing.add_argument(
        "--sort-order",
        type=str.upper,
        choices=[o.value for o in SortOrder],
        help="order by invoked time (default: the API's order)",
    )
    listing.add_argument("--page", type=_positive, default=1, help="first page to show")
    listing.add_argument("--per-page", type=_positive, default=100, help="recordings per page")

    for name, helptext in (
        ("get", "show one recording"),
        ("stop", "stop a recording"),
        ("pause", "pause a recording"),
        ("resume", "resume a paused recording"),
    ):
        action = command(actions, name, helptext, parents=[common])
        action.add_argument("recording_id")

    wait = command(
        actions, "wait", "wait until a recording reaches a status, then show it", parents=[common]
    )
    wait.add_argument("recording_id")
    wait.add_argument(
        "--status",
        type=_status,
        action="append",
        help="status to wait for (repeatable: any of them; default: UPLOADED)",
    )
    wait.add_argument(
        "--timeout", type=_seconds, default=600.0, metavar="SECONDS", help="give up after"
    )
    wait.add_argument(
        "--poll-interval",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="first pause between polls (grows to 30 s)",
    )

    active = command(actions, "active", "a meeting's active recording", parents=[common])
    active.add_argument("meeting_id")

    start = command(actions, "start", "start recording a meeting", parents=[common])
    start.add_argument("meeting_id")
    start.add_argument(
        "--max-seconds", type=int, help="stop after this long, 60..86400 (default: 86400)"
    )
    start.add_argument("--file-name-prefix", help="prefix of the output file (default: none)")
    start.add_argument(
        "--allow-multiple",
        action="store_true",
        help="allow more than one active recording in the meeting",
    )

    track = command(
        actions, "start-track", "start a track recording of a meeting", parents=[common]
    )
    track.add_argument("meeting_id")
    track.add_argument(
        "--layer",
        action="append",
        metavar="NAME",
        help="a layer to record into RealtimeKit's bucket (repeatable; default: one named 'default')",
    )
    track.add_argument(
        "--file-name-prefix", help="prefix of every layer's output files (default: none)"
    )
    track.add_argument(
        "--max-seconds", type=int, help="stop after this long, 60..86400 (default: 86400)"
    )

    export = command(
        commands,
        "export",
        "download recordings into a directory (resumable)",
        parents=[common],
        description=(
            "Download the files of UPLOADED recordings (video, and audio unless\n"
            "--no-audio) into --dest, each checked against its size, hashed, and listed\n"
            "in DEST/manifest.jsonl. Run it again to resume: complete files are skipped\n"
            "and partial downloads continue where they stopped. An s3://bucket/prefix\n"
            "destination (AWS S3, R2, MinIO, ...; endpoint and credentials from AWS_*)\n"
            "gets each file streamed into an object under the same name, and one\n"
            "manifest segment per run under prefix/manifest/."
        ),
        epilog=(
            "Large accounts: --since/--until select recordings by invoked time (both ends\n"
            "inclusive; a date alone covers that whole day, UTC), so an export can be split\n"
            "into time windows run by separate workers (processes or machines), one\n"
            "window each, e.g. per day:\n"
            "  realtimekit export --dest exports/day-01 --since 2025-03-01 --until 2025-03-01\n"
            "Give each worker its own --dest. The exit code is 1 when any file failed;\n"
            "running the same command again retries just those."
        ),
        formatter_class=_DescribedHelpFormatter,
    )
    _add_dest(export)
    export.add_argument(
        "--status", type=_status, action="append", help="filter (repeatable; default: UPLOADED)"
    )
    export.add_argument("--meeting-id", help="only this meeting's recordings (default: all)")
    export.add_argument(
        "--since",
        type=parse_when,
        metavar="WHEN",
        help="invoked at or after WHEN (ISO 8601; a date alone: from its start; default: no bound)",
    )
    export.add_argument(
        "--until",
        type=_until,
        metavar="WHEN",
        help="invoked at or before WHEN (ISO 8601; a date alone: to its end; default: no bound)",
    )
    export.add_argument("--concurrency", type=_positive, default=4, help="parallel downloads")
    export.add_argument("--no-audio", action="store_true", help="skip separate audio files")

    sync = command(
        commands,
        "sync",
        "export UPLOADED recordings not yet in a destination (repeatable)",
        parents=[common],
        description=(
            "Export every UPLOADED recording not yet in --dest (a directory or\n"
            "s3://bucket/prefix), listing only recordings invoked after the cursor the\n"
            "last run saved in --dest, minus --lag (at most the 7-day retention). The\n"
            "window is walked twice, so a recording the first walk missed (the list\n"
            "changing under offset paging) is exported by the second. Exits 0 when\n"
            "caught up, 1 when a file failed (the cursor then stays, so the next run\n"
            "retries it)."
        ),
        epilog=(
            "--lag (default 25h: the longest recording, 24 h, plus an hour to upload)\n"
            "must cover how long a recording can stay RECORDING or UPLOADING; with\n"
            "recordings capped shorter, a shorter lag lists less. --every repeats the\n"
            "run until SIGTERM or SIGINT; a file in flight then is abandoned safely (a\n"
            "local .part is resumed later; an upload is aborted) and the exit code is 0."
        ),
        formatter_class=_DescribedHelpFormatter,
    )
    _add_dest(sync)
    sync.add_argument(
        "--lag",
        type=parse_duration,
        default=DEFAULT_SYNC_LAG,
        help="how far before the saved cursor each run lists again",
    )
    sync.add_argument(
        "--every",
        type=parse_duration,
        help="repeat at this interval until SIGTERM/SIGINT (default: run once)",
    )
    sync.add_argument("--concurrency", type=_positive, default=4, help="parallel downloads")
    sync.add_argument("--no-audio", action="store_true", help="skip separate audio files")

    emulator = command(commands, "emulator", "run a local RealtimeKit emulator")
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulator.add_argument("--port", type=int, default=8788, help="API port (0 picks a free one)")
    emulator.add_argument(
        "--storage-port", type=int, default=0, help="download site port (0 picks a free one)"
    )
    emulator.add_argument("--recordings", type=int, default=1000, help="recordings to seed")
    emulator.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    emulator.add_argument(
        "--speed", type=float, default=1.0, help="emulated seconds per real second"
    )
    emulator.add_argument(
        "--token", default=DEFAULT_TOKEN, help="bearer token the emulator accepts"
    )
    emulator.add_argument(
        "--account-id", default=DEFAULT_ACCOUNT_ID, help="the one account id the emulator knows"
    )
    emulator.add_argument(
        "--app-id", default=DEFAULT_APP_ID, help="the one app id the emulator knows"
    )
    emulator.add_argument(
        "--webhook-url",
        action="append",
        metavar="URL",
        help="deliver signed recording.statusUpdate webhooks here (repeatable; default: none)",
    )

    command(commands, "demo", "the main job, against an embedded emulator")
    return parser


# -- commands ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_client(args: argparse.Namespace) -> AsyncIterator[RealtimeKit]:
    """The client the command runs against: Cloudflare, or an embedded emulator."""
    if not args.emulator:
        async with RealtimeKit(
            api_token=args.api_token,
            account_id=args.account_id,
            app_id=args.app_id,
            base_url=args.base_url,
        ) as client:
            yield client
        return
    async with on_emulator(recordings=args.emulator_recordings, speed=30.0) as (_emu, client):
        yield client


@contextlib.asynccontextmanager
async def on_emulator(**settings: Any) -> AsyncIterator[tuple[Emulator, RealtimeKit]]:
    """An embedded emulator built with ``settings`` and a client on it, both closed after."""
    async with (
        Emulator(**settings) as emu,
        RealtimeKit(
            api_token=emu.token, account_id=emu.account_id, app_id=emu.app_id, base_url=emu.base_url
        ) as client,
    ):
        yield emu, client


def _list_paginator(client: RealtimeKit, args: argparse.Namespace) -> RecordingPaginator:
    return client.recordings.list(
        status=args.status,
        meeting_id=args.meeting_id,
        search=args.search,
        start_time=args.since,
        end_time=args.until,
        sort_by=SortBy.INVOKED_TIME if args.sort_order else None,
        sort_order=SortOrder(args.sort_order) if args.sort_order else None,
        page_no=args.page,
        per_page=args.per_page,
    )


async def _list(client: RealtimeKit, args: argparse.Namespace, out: TextIO) -> int:
    """Print one page, or with ``--all`` every page as it arrives (nothing is collected)."""
    paginator = _list_paginator(client, args)
    pages = paginator.pages() if args.all else _one_page(paginator)
    shown = 0
    writer = TableWriter(LIST_HEADERS, out)
    async with contextlib.aclosing(pages):
        async for page in pages:
            for rec in page.data:
                if args.json:
                    print(json_line(rec, show_urls=args.show_urls), file=out)
                else:
                    writer.add(list_row(rec))
            writer.flush()
            out.flush()
            shown += len(page.data)
    if not args.json:
        writer.flush(force_header=True)
        print(f"{shown} recording(s)", file=out)
    return EXIT_OK


async def _one_page(paginator: RecordingPaginator) -> AsyncGenerator[RecordingPage, None]:
    yield await paginator


def _track_layers(args: argparse.Namespace) -> dict[str, TrackLayer]:
    bucket = TrackOutput(type=TrackOutputType.REALTIMEKIT_BUCKET)
    return {
        name: TrackLayer(outputs=[bucket], file_name_prefix=args.file_name_prefix)
        for name in args.layer or ["default"]
    }


async def _recordings(args: argparse.Namespace, out: TextIO) -> int:
    async with open_client(args) as client:
        if args.action == "list":
            return await _list(client, args, out)
        calls: dict[str, Callable[[], Any]] = {
            "get": lambda: client.recordings.get(args.recording_id),
            "stop": lambda: client.recordings.stop(args.recording_id),
            "pause": lambda: client.recordings.pause(args.recording_id),
            "resume": lambda: client.recordings.resume(args.recording_id),
            "active": lambda: client.recordings.get_active(args.meeting_id),
            "start": lambda: client.recordings.start(
                args.meeting_id,
                max_seconds=args.max_seconds,
                file_name_prefix=args.file_name_prefix,
                allow_multiple_recordings=True if args.allow_multiple else None,
            ),
            "start-track": lambda: client.recordings.start_track(
                args.meeting_id, layers=_track_layers(args), max_seconds=args.max_seconds
            ),
            "wait": lambda: client.recordings.wait_for(
                args.recording_id,
                args.status or RecordingStatus.UPLOADED,
                timeout=args.timeout,
                poll_interval=args.poll_interval,
            ),
        }
        try:
            rec: Recording | None = await calls[args.action]()
        except TimeoutError:
            wanted = " or ".join(map(str, args.status or [RecordingStatus.UPLOADED]))
            raise _CommandError(
                f"recording {args.recording_id} did not reach {wanted} within {args.timeout:g}s"
            ) from None
        if rec is None:  # a track start whose answer carries no recording
            print("started; the API returned no recording", file=out)
        elif args.json:
            print(json_line(rec, show_urls=args.show_urls), file=out)
        else:
            print(detail(rec, show_urls=args.show_urls), file=out)
        return EXIT_OK


@contextlib.contextmanager
def _plain_progress(err: TextIO, interval: float = 1.0) -> Iterator[ProgressCallback]:
    """Progress as one line on ``err`` at most every ``interval`` seconds, and a last one."""
    last_shown = -interval
    latest: ExportProgress | None = None
    shown: ExportProgress | None = None

    def line(event: ExportProgress) -> str:
        failed = f", {event.failed} failed" if event.failed else ""
        return (
            f"export: {event.files_done}/{event.files_total} files, "
            f"{_size(event.bytes_done)} of {_size(event.bytes_total)}{failed}"
        )

    def update(event: ExportProgress) -> None:
        nonlocal last_shown, latest, shown
        latest = event
        now = time.monotonic()
        if now - last_shown >= interval:
            print(line(event), file=err, flush=True)
            last_shown, shown = now, event

    try:
        yield update
    finally:
        if latest is not None and latest is not shown:
            print(line(latest), file=err, flush=True)


def _rich_progress(err: TextIO) -> contextlib.AbstractContextManager[ProgressCallback]:
    """A live bar (files, bytes, rate, ETA); raises ImportError without the ``cli`` extra."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    @contextlib.contextmanager
    def bar() -> Iterator[ProgressCallback]:
        with Progress(
            TextColumn("{task.fields[files]} files"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=err),
        ) as progress:
            task = progress.add_task("export", total=None, files="0/0")

            def update(event: ExportProgress) -> None:
                progress.update(
                    task,
                    completed=event.bytes_done,
                    total=event.bytes_total or None,
                    files=f"{event.files_done}/{event.files_total}",
                )

            yield update

    return bar()


def export_progress(err: TextIO) -> contextlib.AbstractContextManager[ProgressCallback]:
    """A rich progress bar on a terminal, plain lines otherwise (or without rich)."""
    if err.isatty():
        try:
            return _rich_progress(err)
        except ImportError:
            pass
    return _plain_progress(err)


def export_summary(report: ExportReport) -> str:
    """The human summary of an export: counts and sizes, then every failure."""
    rows = [
        ("exported", str(len(report.exported)), _size(sum(e.bytes for e in report.exported))),
        ("skipped", str(len(report.skipped)), _size(sum(e.bytes for e in report.skipped))),
        ("failed", str(len(report.failed)), "-"),
        ("expired", str(len(report.expired)), "-"),
        ("ignored recordings", str(len(report.ignored)), "-"),
    ]
    text = table(("RESULT", "COUNT", "SIZE"), rows)
    text += f"\n{_size(report.bytes)} downloaded"
    if report.failed:
        failures = [(f.recording_id, str(f.kind or "-"), f.reason) for f in report.failed]
        text += "\n\n" + table(("RECORDING", "FILE", "REASON"), failures)
    return text


async def _export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    async with open_client(args) as client:
        with export_progress(err) as on_progress:
            report = await export_recordings(
                client,
                args.dest,
                status=args.status or RecordingStatus.UPLOADED,
                meeting_id=args.meeting_id,
                start_time=args.since,
                end_time=args.until,
                include_audio=not args.no_audio,
                concurrency=args.concurrency,
                on_progress=on_progress,
            )
    if args.json:
        doc = converter.unstructure(report)
        print(encode_json(doc).decode(), file=out)
    else:
        print(export_summary(report), file=out)
    return EXIT_FAILURE if report.failed else EXIT_OK


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT while inside (where the loop supports it)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _sync(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        async with open_client(args) as client:
            while True:
                with export_progress(err) as on_progress:
                    running = asyncio.ensure_future(
                        sync_recordings(
                            client,
                            args.dest,
                            lag=args.lag,
                            include_audio=not args.no_audio,
                            concurrency=args.concurrency,
                            on_progress=on_progress,
                        )
                    )
                    stopping = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    stopping.cancel()
                    if not running.done():
                        running.cancel()  # the file in flight is abandoned safely
                        await asyncio.wait([running])
                        print("realtimekit: stopped; the run in progress was abandoned", file=err)
                        return EXIT_OK
                report = running.result()
                if args.json:
                    print(encode_json(converter.unstructure(report)).decode(), file=out)
                else:
                    print(export_summary(report.export), file=out)
                    print(f"listed from {_when(report.since)}", file=out)
                code = EXIT_OK if report.caught_up else EXIT_FAILURE
                if args.every is None:
                    return code
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.every.total_seconds())
                if stop.is_set():
                    return EXIT_OK


async def _emulator(args: argparse.Namespace, out: TextIO) -> int:
    from .emulator import serve

    try:
        await serve(
            args.host,
            args.port,
            announce=lambda line: print(line, file=out, flush=True),
            recordings=args.recordings,
            seed=args.seed,
            speed=args.speed,
            storage_port=args.storage_port,
            token=args.token,
            account_id=args.account_id,
            app_id=args.app_id,
            webhook_urls=args.webhook_url or (),
        )
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise _CommandError(
            f"cannot serve the emulator on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    return EXIT_OK


DEMO_MEETINGS = 3


async def demo(out: TextIO) -> int:
    """Start, pause, resume and stop recordings on an embedded emulator, then list all."""

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    loop = asyncio.get_running_loop()
    began = loop.time()
    # 60 emulated seconds per real second: the lifecycle's waits take a fraction of a second.
    async with on_emulator(recordings=1200, meetings=40, seed=7, speed=60.0) as (emu, client):
        say(f"emulator on {emu.base_url} with 1200 seeded recordings")
        meetings = [f"demo-meeting-{n}" for n in range(1, DEMO_MEETINGS + 1)]
        started = await asyncio.gather(
            *(client.recordings.start(m, file_name_prefix="demo") for m in meetings)
        )
        for meeting, rec in zip(meetings, started, strict=True):
            say(f"started  {rec.id} in {meeting}: {rec.status}")
        recording = RecordingStatus.RECORDING
        live = await asyncio.gather(
            *(
                client.recordings.wait_for(r.id, status=recording, poll_interval=0.05)
                for r in started
            )
        )
        for rec in live:
            say(f"live     {rec.id}: {rec.status}")
        for rec in await asyncio.gather(*(client.recordings.pause(r.id) for r in live)):
            say(f"paused   {rec.id}: {rec.status}")
        for rec in await asyncio.gather(*(client.recordings.resume(r.id) for r in live)):
            say(f"resumed  {rec.id}: {rec.status}")
        await asyncio.sleep(0.2)  # record ~12 emulated seconds before stopping
        for rec in await asyncio.gather(*(client.recordings.stop(r.id) for r in live)):
            say(f"stopped  {rec.id}: {rec.status}")
        done = await asyncio.gather(
            *(
                client.recordings.wait_for(
                    r.id, status=RecordingStatus.UPLOADED, timeout=30, poll_interval=0.05
                )
                for r in live
            )
        )
        for rec in done:
            say(
                f"uploaded {rec.id}: {_size(rec.file_size)}, {rec.recording_duration}s, "
                f"{safe_url(rec.download_url)}"
            )
        by_status: Counter[str] = Counter()
        pages = 0
        async for page in client.recordings.list(per_page=100).pages():
            pages += 1
            by_status.update(str(r.status) for r in page.data)
        say("")
        say(table(("STATUS", "COUNT"), [(s, str(n)) for s, n in sorted(by_status.items())]))
        say(
            f"\n{sum(by_status.values())} recordings listed over {pages} pages; "
            f"{len(done)} demo recordings UPLOADED in {loop.time() - began:.1f}s"
        )
    return EXIT_OK


# -- entry point -----------------------------------------------------------------------------


async def _dispatch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.command == "recordings":
        return await _recordings(args, out)
    if args.command == "export":
        return await _export(args, out, err)
    if args.command == "sync":
        return await _sync(args, out, err)
    if args.command == "emulator":
        return await _emulator(args, out)
    return await demo(out)


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run a parsed command; expected failures become one line on ``err`` and an exit code."""
    try:
        return await _dispatch(args, out, err)
    except ValidationError as exc:
        print(f"realtimekit: error: {_with_cli_hint(exc)}", file=err)
        return EXIT_USAGE
    except (RealtimeKitError, _CommandError) as exc:
        print(f"realtimekit: error: {exc}", file=err)
        return EXIT_FAILURE


class _CommandError(Exception):
    """A command failed for a reason the user can act on: one line, exit code 1."""


# The SDK's hint for a missing setting names its keyword argument; here it is a flag.
_FLAGS = {"api_token": "--api-token", "account_id": "--account-id", "app_id": "--app-id"}


def _with_cli_hint(exc: ValidationError) -> str:
    flag = _FLAGS.get(exc.field)
    text = str(exc)
    return text.replace(f"pass {exc.field}=", f"pass {flag}") if flag else text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``realtimekit`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args, sys.stdout, sys.stderr))
    except KeyboardInterrupt:
        print("realtimekit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `realtimekit recordings list --all | head`: the reader left; that is fine.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
