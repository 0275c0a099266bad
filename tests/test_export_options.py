"""The export entry points' shared options: resolution, the deprecated names, the settings value.

The pure part (:func:`resolve_export`) is tested without a network; the
deprecated names are driven through the real entry points against the
emulator, so what is checked is what the export does with them.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest

from realtimekit_async import RetryPolicy, ValidationError
from realtimekit_async._config import resolve_options
from realtimekit_async._export_options import ExportOptions, ExportSettings, resolve_export
from realtimekit_async.emulator import Emulator, FaultConfig
from realtimekit_async.emulator._util import ms_to_datetime
from realtimekit_async.export import (
    ExportReport,
    S3Settings,
    SyncReport,
    export_one,
    export_recordings,
    sync_recordings,
)

from ._export_support import emulated, names_in

CLIENT_POLICY = RetryPolicy(max_retries=7, initial_delay=0.25, max_delay=3.0)
CLIENT = resolve_options(
    api_token="t",
    account_id="a",
    app_id=None,
    base_url=None,
    timeout=30.0,
    max_retries=CLIENT_POLICY,
    env={},
)
#: The first download fails with a 500: only an export allowed no retry reports it.
FIRST_DOWNLOAD_FAILS = FaultConfig(first=1, kinds=("500",), routes="storage")


# -- resolution (pure) -----------------------------------------------------------------------


def test_no_options_resolve_to_the_documented_defaults_and_the_clients_policy() -> None:
    settings = resolve_export({}, CLIENT, concurrency=4)
    assert settings == ExportSettings(retry=CLIENT_POLICY, connect_timeout=10.0, concurrency=4)
    assert settings.timeout.total is None  # a large file may take long
    assert (settings.timeout.sock_connect, settings.timeout.sock_read) == (10.0, 60.0)
    assert settings.margin.total_seconds() == 300.0


def test_max_retries_count_keeps_the_clients_backoff_and_a_policy_replaces_it() -> None:
    counted = resolve_export({"max_retries": 2}, CLIENT).retry
    assert counted == RetryPolicy(max_retries=2, initial_delay=0.25, max_delay=3.0)
    policy = RetryPolicy(max_retries=1, initial_delay=0.001)
    assert resolve_export({"max_retries": policy}, CLIENT).retry is policy
    assert resolve_export({"max_retries": None}, CLIENT).retry is CLIENT_POLICY


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3"])
def test_a_bad_max_retries_is_refused(bad: object) -> None:
    with pytest.raises(ValidationError, match="max_retries: must be an integer >= 0"):
        resolve_export({"max_retries": bad}, CLIENT)  # type: ignore[typeddict-item]


def test_the_deprecated_retry_warns_naming_max_retries_and_is_used() -> None:
    policy = RetryPolicy(max_retries=0)
    with pytest.warns(DeprecationWarning, match=r"retry= is deprecated; pass max_retries="):
        assert resolve_export({"retry": policy}, CLIENT).retry is policy


def test_retry_and_max_retries_together_are_refused_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValidationError, match="retry: is the deprecated name of max_retries"):
            resolve_export({"retry": RetryPolicy(), "max_retries": 1}, CLIENT)


def test_an_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"^since: not an export option$"):
        resolve_export({"since": None}, CLIENT)  # type: ignore[typeddict-unknown-key]


def test_settings_are_picklable_and_carry_no_secret_or_callback() -> None:
    options: ExportOptions = {
        "max_retries": 3,
        "include_audio": False,
        "on_progress": print,
        "s3": S3Settings(access_key_id="AKIA", secret_access_key="very-secret"),
        "app_id": "app",
    }
    settings = resolve_export(options, CLIENT, concurrency=8)
    data = pickle.dumps(settings)
    assert pickle.loads(data) == settings
    assert b"very-secret" not in data
    assert b"AKIA" not in data
    assert "very-secret" not in repr(settings)
    assert (settings.include_audio, settings.concurrency, settings.app_id) == (False, 8, "app")


def test_every_option_is_documented_in_export_options() -> None:
    doc = ExportOptions.__doc__ or ""
    for name in ExportOptions.__annotations__:
        assert f"``{name}``" in doc, name


# -- the deprecated names through the entry points -------------------------------------------


def window(emu: Emulator) -> tuple[datetime, datetime, set[str]]:
    """A window holding the older half of the UPLOADED recordings, and their ids."""
    uploaded = sorted(
        (r for r in emu.store.recordings.values() if r.status == "UPLOADED"),
        key=lambda r: r.invoked_ms,
    )
    half = len(uploaded) // 2
    chosen = uploaded[:half]
    assert chosen
    assert uploaded[half].invoked_ms > chosen[-1].invoked_ms
    start, end = chosen[0].invoked_ms, chosen[-1].invoked_ms
    return ms_to_datetime(start), ms_to_datetime(end), {r.id for r in chosen}


def exported_ids(report: ExportReport) -> set[str]:
    return {e.recording_id for e in report.exported} | {i.recording_id for i in report.ignored}


async def test_since_and_until_still_select_the_window_with_a_warning(tmp_path: Path) -> None:
    async with emulated(recordings=12, meetings=3) as (emu, client):
        start, end, chosen = window(emu)
        with pytest.warns(DeprecationWarning, match="is deprecated") as caught:
            old = await export_recordings(client, tmp_path / "old", since=start, until=end)
        new = await export_recordings(client, tmp_path / "new", start_time=start, end_time=end)

    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "since= is deprecated; pass start_time= instead",
        "until= is deprecated; pass end_time= instead",
    ]
    assert all(w.filename == __file__ for w in caught)  # points at the caller
    assert {e.recording_id for e in new.exported} == chosen
    assert {e.recording_id for e in old.exported} == chosen
    assert names_in(tmp_path / "old") == names_in(tmp_path / "new")


async def test_until_and_end_time_together_are_refused_before_any_request(
    tmp_path: Path,
) -> None:
    async with emulated(recordings=2) as (emu, client):
        _start, end, _chosen = window(emu)
        before = sum(emu.stats.requests.values())
        with pytest.raises(ValidationError, match="until: is the deprecated name of end_time"):
            await export_recordings(client, tmp_path, until=end, end_time=end)
        assert sum(emu.stats.requests.values()) == before
    assert names_in(tmp_path) == set()


NO_RETRY = RetryPolicy(max_retries=0)


async def test_the_deprecated_retry_is_honoured_by_every_entry_point(tmp_path: Path) -> None:
    async with emulated(recordings=6, meetings=2, faults=FIRST_DOWNLOAD_FAILS) as (emu, client):
        rec = next(r for r in emu.store.recordings.values() if emu.file_size(r.id, "video"))
        runs: dict[str, Callable[[], Awaitable[ExportReport | SyncReport]]] = {
            "export_recordings": lambda: export_recordings(client, tmp_path / "a", retry=NO_RETRY),
            "sync_recordings": lambda: sync_recordings(client, tmp_path / "b", retry=NO_RETRY),
            "export_one": lambda: export_one(client, rec.id, tmp_path / "c", retry=NO_RETRY),
        }
        for name, run in runs.items():
            emu.faults = FIRST_DOWNLOAD_FAILS  # a fresh schedule
            with pytest.warns(DeprecationWarning, match="pass max_retries= instead") as caught:
                result = await run()
            report = result if isinstance(result, ExportReport) else result.export
            # The client retries 8 times; only the policy given here lets the 500 through.
            assert len(report.failed) == 1, name
            assert "HTTP 500" in report.failed[0].reason, name
            assert caught[0].filename == __file__, name


async def test_max_retries_as_a_count_lets_an_export_retry_or_not(tmp_path: Path) -> None:
    async with emulated(recordings=6, meetings=2, faults=FIRST_DOWNLOAD_FAILS) as (emu, client):
        once = await export_recordings(client, tmp_path / "none", max_retries=0)
        emu.faults = FIRST_DOWNLOAD_FAILS  # a fresh schedule
        again = await export_recordings(client, tmp_path / "one", max_retries=1)
    assert len(once.failed) == 1
    assert again.failed == ()
    assert len(again.exported) == len(once.exported) + 1
