"""The shard planner, without a network: every recording in exactly one shard, the
budget divided, reports merged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtimekit_async import RateLimit, RateLimits, RecordingStatus, ValidationError
from realtimekit_async._export_plan import (
    CURSOR_NAME,
    ExportFailure,
    ExportReport,
    FileKind,
    IgnoredRecording,
    ManifestEntry,
)
from realtimekit_async._shard_plan import (
    MAX_SHARDS,
    SHARE_GUARD,
    Shard,
    default_split,
    divide_rate_limits,
    merge_reports,
    parse_shard_spec,
    plan_shards,
    recording_bucket,
    shard_cursor_name,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ids = st.text(min_size=1, max_size=40)
offsets = st.integers(min_value=0, max_value=10**9)  # microseconds past T0
#: SHA-256 based, so fixed across processes and Python versions.
BUCKETS_OF_REC_0_TO_5 = [0, 3, 4, 5, 2, 2]


def _owners(shards: tuple[Shard, ...], rid: str, when: datetime | None) -> list[Shard]:
    return [s for s in shards if s.holds(rid, when)]


@given(
    apps=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4),
    windows=st.integers(1, 7),
    buckets=st.integers(1, 9),
    span=st.integers(min_value=1000, max_value=10**9),
    rid=ids,
    at=offsets,
)
def test_every_recording_of_the_range_is_in_exactly_one_shard_per_app(
    apps: list[str], windows: int, buckets: int, span: int, rid: str, at: int
) -> None:
    end = T0 + timedelta(microseconds=span)
    when = T0 + timedelta(microseconds=at % (span + 1))  # in [T0, end], both ends included
    shards = plan_shards(apps, start_time=T0, end_time=end, windows=windows, buckets=buckets)
    assert len(shards) == len(set(apps)) * windows * buckets
    assert len({s.name for s in shards}) == len(shards)
    for app in set(apps):
        mine = tuple(s for s in shards if s.app_id == app)
        assert len(_owners(mine, rid, when)) == 1


@given(buckets=st.integers(1, 9), rid=ids)
def test_open_ranges_and_missing_times_still_place_each_recording_once(
    buckets: int, rid: str
) -> None:
    shards = plan_shards(["app"], buckets=buckets)
    assert len(_owners(shards, rid, None)) == 1
    assert len(_owners(shards, rid, T0)) == 1
    owner = _owners(shards, rid, T0)[0]
    assert owner.bucket == recording_bucket(rid, buckets)


def test_windows_are_adjacent_and_half_open_but_the_last_holds_the_end() -> None:
    end = T0 + timedelta(days=3)
    first, second, last = plan_shards(["app"], start_time=T0, end_time=end, windows=3)
    assert (first.start_time, first.end_time) == (T0, T0 + timedelta(days=1))
    assert second.start_time == first.end_time
    boundary = first.end_time
    assert boundary is not None
    assert not first.holds("r", boundary)
    assert second.holds("r", boundary)
    assert last.holds("r", end)
    assert not last.holds("r", end + timedelta(microseconds=1))
    assert not first.holds("r", T0 - timedelta(microseconds=1))


def test_the_bucket_is_a_stable_hash_not_pythons_hash() -> None:
    # Fixed values: a change of the hash would move recordings between shards of a
    # job that is partly done (skipped files would be fetched again elsewhere).
    assert [recording_bucket(f"rec-{n}", 7) for n in range(6)] == BUCKETS_OF_REC_0_TO_5
    assert recording_bucket("182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e", 1000) == 4


def test_repeated_apps_are_one_and_an_app_is_required() -> None:
    assert [s.app_id for s in plan_shards(["a", "b", "a"])] == ["a", "b"]
    assert [s.app_id for s in plan_shards("a")] == ["a"]
    with pytest.raises(ValidationError, match="at least one app"):
        plan_shards([])
    with pytest.raises(ValidationError, match="app_id"):
        plan_shards([""])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"windows": 2}, "windows"),
        ({"windows": 2, "start_time": T0}, "windows"),
        ({"windows": 2, "start_time": T0, "end_time": T0}, "windows"),
        ({"start_time": T0 + timedelta(1), "end_time": T0}, "start_time"),
        ({"windows": 0}, "windows"),
        ({"buckets": 0}, "buckets"),
        ({"buckets": MAX_SHARDS + 1}, "shards"),
        ({"windows": 5, "start_time": T0, "end_time": T0 + timedelta(microseconds=2)}, "windows"),
    ],
)
def test_bad_plans_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        plan_shards(["app"], **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_default_split_prefers_windows_when_the_range_is_bounded() -> None:
    assert default_split(8, bounded=True) == (8, 1)
    assert default_split(8, bounded=False) == (1, 8)
    with pytest.raises(ValidationError):
        default_split(0, bounded=True)


@pytest.mark.parametrize(
    ("text", "parsed"), [("0/1", (0, 1)), ("3/8", (3, 8)), (" 2 / 4 ", (2, 4))]
)
def test_shard_spec(text: str, parsed: tuple[int, int]) -> None:
    assert parse_shard_spec(text) == parsed


@pytest.mark.parametrize("text", ["1/1", "4/4", "-1/4", "1", "a/b", "1/0", "1/2/3", ""])
def test_bad_shard_spec(text: str) -> None:
    with pytest.raises(ValidationError, match="K/N"):
        parse_shard_spec(text)


def test_each_shard_has_its_own_cursor() -> None:
    shards = plan_shards(["a", "b"], buckets=3)
    names = {shard_cursor_name(s) for s in shards}
    assert len(names) == 6
    assert CURSOR_NAME not in names
    assert all(n.startswith(".realtimekit-sync.") and n.endswith(".json") for n in names)


@given(
    counts=st.lists(st.integers(1, 5000), min_size=1, max_size=3),
    parts=st.integers(1, 64),
    adaptive=st.booleans(),
)
def test_divided_limits_together_stay_within_the_budget(
    counts: list[int], parts: int, adaptive: bool
) -> None:
    limits = RateLimits(tuple(RateLimit(n, 10.0 * (i + 1)) for i, n in enumerate(counts)), adaptive)
    share = divide_rate_limits(limits, parts)
    assert share is not None
    assert share.adaptive is adaptive
    for whole, part in zip(limits.layers, share.layers, strict=True):
        assert part.period == (whole.period if parts == 1 else whole.period * (1 + SHARE_GUARD))
        assert part.max_requests >= 1
        if whole.max_requests >= parts:
            assert part.max_requests * parts <= whole.max_requests
            # rounded down by less than one request per part
            assert (part.max_requests + 1) * parts > whole.max_requests


def test_no_limits_stay_none_and_parts_must_be_positive() -> None:
    assert divide_rate_limits(None, 4) is None
    with pytest.raises(ValidationError):
        divide_rate_limits(RateLimits(), 0)


def _entry(rid: str, kind: FileKind = FileKind.VIDEO) -> ManifestEntry:
    return ManifestEntry(
        recording_id=rid,
        meeting_id=None,
        status=RecordingStatus.UPLOADED,
        kind=kind,
        path=f"{rid}_{kind}.mp4",
        bytes=10,
        sha256="0" * 64,
        exported_at=T0,
    )


def _report(**fields: object) -> ExportReport:
    base: dict[str, object] = {
        "exported": (),
        "skipped": (),
        "failed": (),
        "expired": (),
        "ignored": (),
        "bytes": 0,
    }
    base.update(fields)
    return ExportReport(**base)  # type: ignore[arg-type]


def test_merged_reports_list_each_file_once() -> None:
    # A shard killed after storing "a" and rerun: the rerun skips "a"; a shard that
    # failed on "b" once and was retried reports it exported.
    first = _report(
        exported=(_entry("a"),),
        failed=(ExportFailure("b", FileKind.VIDEO, "reset"),),
        bytes=10,
    )
    rerun = _report(
        exported=(_entry("b"), _entry("c")),
        skipped=(_entry("a"),),
        failed=(ExportFailure("d", None, "listing"),),
        ignored=(IgnoredRecording("e", RecordingStatus.ERRORED, "errored"),),
        bytes=20,
    )
    merged = merge_reports([first, rerun])
    assert [e.recording_id for e in merged.exported] == ["a", "b", "c"]
    assert merged.skipped == ()
    assert [f.recording_id for f in merged.failed] == ["d"]
    assert [i.recording_id for i in merged.ignored] == ["e"]
    assert merged.bytes == 30
    assert not merged.ok
    assert merge_reports([]) == _report()
