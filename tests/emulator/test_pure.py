"""Pure logic of the emulator, tested without a server."""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtimekit_async.emulator import (
    CLOUDFLARE_RATE_LIMITS,
    EmulatedClock,
    FaultConfig,
    RateLimitRule,
    expected_file_bytes,
    expected_file_sha256,
    iter_file_bytes,
)
from realtimekit_async.emulator._faults import (
    FaultSchedule,
    RateLimiter,
    format_retry_after,
    to_rules,
)
from realtimekit_async.emulator._parsing import (
    ListQuery,
    parse_list_query,
    parse_start_body,
    parse_track_body,
    sanitize_storage_config,
)
from realtimekit_async.emulator._seed import generate_seed_data
from realtimekit_async.emulator._signing import UrlSigner
from realtimekit_async.emulator._state import (
    LifecycleConfig,
    Recording,
    RecordingStore,
    check_action,
    compute_file_size,
    page_window,
)
from realtimekit_async.emulator._storage import RangeNotSatisfiableError, parse_range
from realtimekit_async.emulator._util import EmulatorHTTPError, format_ms, iso_to_ms

T0 = 1_740_830_400_000  # 2025-03-01T12:00:00Z


class FakeMonotonic:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make_store(**config: object) -> RecordingStore:
    clock = EmulatedClock(T0, speed=0)
    return RecordingStore(
        clock,
        LifecycleConfig(**config),  # type: ignore[arg-type]
        ids_rng=random.Random(1),
        caller={"name": "app", "type": "ORGANIZATION", "user_Id": "app-id"},
    )


# -- time ------------------------------------------------------------------------------


def test_format_and_parse_times_roundtrip_with_milliseconds() -> None:
    assert format_ms(T0 + 117) == "2025-03-01T12:00:00.117Z"
    assert format_ms(None) is None
    assert iso_to_ms("2025-03-01T12:00:00.117Z") == T0 + 117
    assert iso_to_ms("2025-03-01T13:00:00+01:00") == T0
    assert iso_to_ms("2025-03-01T12:00:00") == T0  # naive means UTC


def test_clock_scales_real_time_and_advances() -> None:
    mono = FakeMonotonic()
    clock = EmulatedClock(T0, speed=60, monotonic=mono)
    assert clock.now_ms() == T0
    mono.t += 1.5
    assert clock.now_ms() == T0 + 90_000
    clock.advance(10)
    assert clock.now_ms() == T0 + 100_000
    assert clock.to_real_seconds(120) == 2.0
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_frozen_clock_only_moves_on_advance() -> None:
    mono = FakeMonotonic()
    clock = EmulatedClock(T0, speed=0, monotonic=mono)
    mono.t += 1000
    assert clock.now_ms() == T0
    clock.advance(0.25)
    assert clock.now_ms() == T0 + 250
    assert clock.to_real_seconds(3) == 3  # unscaled when frozen


# -- paging and query parsing ------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "page", "per", "expected"),
    [
        (30, 1, 30, (0, 30, 1, 30)),
        (45, 2, 20, (20, 40, 21, 40)),
        (45, 3, 20, (40, 45, 41, 45)),
        (45, 4, 20, (60, 60, 61, 60)),
        (0, 1, 20, (0, 0, 1, 0)),
    ],
)
def test_page_window(total: int, page: int, per: int, expected: tuple[int, ...]) -> None:
    w = page_window(total, page, per)
    assert (w.start_index, w.stop_index, w.start_offset, w.end_offset) == expected
    assert w.total_count == total


@given(total=st.integers(0, 500), page=st.integers(1, 40), per=st.integers(1, 50))
def test_page_window_invariants(total: int, page: int, per: int) -> None:
    w = page_window(total, page, per)
    items = list(range(total))[w.start_index : w.stop_index]
    assert w.end_offset - w.start_offset + 1 == len(items)
    assert len(items) <= per
    if items:
        assert items[0] == w.start_offset - 1
        assert items[-1] == w.end_offset - 1


def test_page_window_rejects_zero() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        page_window(10, 0, 5)


def test_parse_list_query_defaults_and_repeated_status() -> None:
    q = parse_list_query([])
    assert q == ListQuery(per_page=20)
    q = parse_list_query(
        [
            ("status", "UPLOADED"),
            ("status", "ERRORED"),
            ("search", "Design"),
            ("sort_order", "ASC"),
            ("page_no", "2.0"),
            ("per_page", "100"),
            ("expired", "false"),
            ("start_time", "2025-03-01T12:00:00.000Z"),
            ("unknown", "ignored"),
        ]
    )
    assert q.statuses == frozenset({"UPLOADED", "ERRORED"})
    assert q.search == "design"
    assert q.descending is False
    assert (q.page_no, q.per_page) == (2, 100)
    assert q.expired is False
    assert q.start_ms == T0


@pytest.mark.parametrize(
    ("pairs", "fragment"),
    [
        ([("page_no", "-1")], "page_no must be a number >= 0"),
        ([("page_no", "abc")], "page_no must be a number >= 0"),
        ([("page_no", "nan")], "page_no must be a number >= 0"),
        ([("per_page", "-1.5")], "per_page must be a number >= 0"),
        ([("status", "DONE")], "invalid status 'DONE'"),
        ([("sort_order", "asc")], "invalid sort_order"),
        ([("sort_by", "createdAt")], "invalid sort_by"),
        ([("expired", "yes")], "expired must be true or false"),
        ([("end_time", "yesterday")], "end_time must be an ISO 8601"),
    ],
)
def test_parse_list_query_rejects(pairs: list[tuple[str, str]], fragment: str) -> None:
    with pytest.raises(EmulatorHTTPError) as info:
        parse_list_query(pairs)
    assert info.value.status == 400
    assert fragment in info.value.message


def test_parse_list_query_max_per_page_is_configurable() -> None:
    assert parse_list_query([("per_page", "500")], max_per_page=500).per_page == 500
    assert parse_list_query([("per_page", "500")], max_per_page=7).per_page == 7
    assert parse_list_query([("per_page", "0")], default_per_page=5).per_page == 5
    assert parse_list_query([("page_no", "0"), ("per_page", "1.5")]).page_no == 1
    assert parse_list_query([("per_page", "1.5")]).per_page == 1


# -- request bodies ------------------------------------------------------------------------


def test_parse_start_body_validates_fields() -> None:
    req = parse_start_body(
        {
            "meeting_id": "m",
            "max_seconds": 60,
            "audio_config": {"codec": "AAC", "channel": "stereo"},
            "realtimekit_bucket_config": {"enabled": False},
            "storage_config": {"type": "aws", "bucket": "b", "secret": "s", "access_key": "k"},
        }
    )
    assert req.has_audio
    assert not req.bucket_enabled
    assert req.storage_config == {"type": "aws", "bucket": "b"}
    for body, fragment in [
        ({}, "meeting_id is required"),
        ([], "JSON object"),
        ({"meeting_id": "m", "max_seconds": 59}, "between 60 and 86400"),
        ({"meeting_id": "m", "max_seconds": 86401}, "between 60 and 86400"),
        ({"meeting_id": "m", "max_seconds": True}, "max_seconds must be an integer"),
        ({"meeting_id": "m", "storage_config": {"type": "ftp"}}, "storage_config.type"),
        ({"meeting_id": "m", "audio_config": {"codec": "OGG"}}, "audio_config.codec"),
        ({"meeting_id": "m", "allow_multiple_recordings": "yes"}, "allow_multiple_recordings"),
    ]:
        with pytest.raises(EmulatorHTTPError, match=fragment):
            parse_start_body(body)


def test_parse_track_body() -> None:
    req = parse_track_body(
        {
            "meeting_id": "m",
            "layers": {
                "default": {
                    "file_name_prefix": "p",
                    "outputs": [
                        {"type": "REALTIMEKIT_BUCKET"},
                        {
                            "type": "STORAGE_CONFIG",
                            "storage_config": {"type": "gcs", "secret": "x"},
                        },
                    ],
                }
            },
        }
    )
    assert req.kind == "track"
    assert req.bucket_enabled
    assert req.storage_config == {"type": "gcs"}
    assert req.file_name_prefix == "p"
    with pytest.raises(EmulatorHTTPError, match="layers is required"):
        parse_track_body({"meeting_id": "m", "max_seconds": 60})
    with pytest.raises(EmulatorHTTPError, match=r"outputs\[0\].storage_config is required"):
        parse_track_body(
            {"meeting_id": "m", "layers": {"a": {"outputs": [{"type": "STORAGE_CONFIG"}]}}}
        )
    with pytest.raises(EmulatorHTTPError, match=r"outputs\[0\].type"):
        parse_track_body({"meeting_id": "m", "layers": {"a": {"outputs": [{"type": "S3"}]}}})


def test_parse_track_body_current_generation() -> None:
    req = parse_track_body(
        {
            "meeting_id": "m",
            "layers": {"voices": {"file_name_prefix": "v", "media_kind": "audio"}},
            "user_ids": ["u1"],
        }
    )
    assert req.kind == "track"
    assert req.file_name_prefix == "v"
    assert req.user_ids == ("u1",)
    assert req.layers == {"voices": {"file_name_prefix": "v", "media_kind": "audio"}}
    assert parse_track_body({"meeting_id": "m"}).layers is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"user_ids": ["u"], "max_seconds": 60}, "not both"),
        ({"layers": {"a": {"media_kind": "audio", "outputs": []}}}, "not both"),
        ({"layers": {"a": {"media_kind": "video"}}}, "layers.a.media_kind must be one of audio"),
        ({"layers": {"a": {"file_name_prefix": 3}}}, "layers.a.file_name_prefix must be a string"),
        ({"user_ids": "u1"}, "user_ids must be a list"),
        ({"user_ids": [1]}, "user_ids must be a list of strings"),
        ({"user_ids": [f"u{i}" for i in range(101)]}, "at most 100"),
    ],
)
def test_parse_track_body_rejects(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EmulatorHTTPError) as info:
        parse_track_body({"meeting_id": "m", **body})
    assert info.value.status == 400
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"video_config": {"codec": "VP9"}}, "video_config.codec must be one of H264, VP8"),
        ({"video_config": {"height": 0}}, "video_config.height must be an integer between 1"),
        ({"video_config": {"width": 1921}}, "video_config.width must be an integer between 1"),
        ({"video_config": {"export_file": "yes"}}, "video_config.export_file must be a boolean"),
        (
            {"video_config": {"watermark": {"position": "center"}}},
            "video_config.watermark.position must be one of",
        ),
        (
            {"video_config": {"watermark": {"size": {"width": 0}}}},
            "video_config.watermark.size.width must be an integer >= 1",
        ),
        ({"audio_config": {"codec": "OPUS"}}, "audio_config.codec must be one of MP3, AAC"),
        ({"audio_config": {"channel": "5.1"}}, "audio_config.channel must be one of"),
        ({"interactive_config": {"type": "XML"}}, "interactive_config.type must be one of ID3"),
        ({"realtimekit_bucket_config": {}}, "realtimekit_bucket_config.enabled is required"),
        ({"storage_config": {"bucket": "b"}}, "storage_config.type must be one of"),
        ({"rtmp_out_config": {"rtmp_url": 5}}, "rtmp_out_config.rtmp_url must be a string"),
        ({"max_seconds": 59}, "max_seconds must be between 60 and 86400"),
    ],
)
def test_parse_start_body_rejects_what_the_schema_rejects(
    body: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(EmulatorHTTPError) as info:
        parse_start_body({"meeting_id": "m", **body})
    assert info.value.status == 400
    assert fragment in info.value.message


def test_sanitize_storage_config_drops_write_only_secrets() -> None:
    clean = sanitize_storage_config(
        {
            "type": "sftp",
            "auth_method": "KEY",
            "host": "h",
            "port": 22,
            "password": "p",
            "private_key": "k",
            "secret": "s",
            "access_key": "a",
        }
    )
    assert clean == {"type": "sftp", "auth_method": "KEY", "host": "h", "port": 22}


# -- lifecycle -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action", "fragment"),
    [
        ("RECORDING", "rewind", "invalid action 'rewind'"),
        ("PAUSED", "pause", "cannot pause a recording in status PAUSED"),
        ("RECORDING", "resume", "cannot resume a recording in status RECORDING"),
        ("UPLOADED", "stop", "cannot stop a recording in status UPLOADED"),
        ("INVOKED", None, "invalid action None"),
    ],
)
def test_check_action_rejects(status: str, action: object, fragment: str) -> None:
    with pytest.raises(EmulatorHTTPError) as info:
        check_action(status, action)
    assert info.value.status == 400
    assert fragment in info.value.message


def test_check_action_accepts() -> None:
    assert check_action("RECORDING", "pause") == "pause"
    assert check_action("PAUSED", "resume") == "resume"
    assert check_action("INVOKED", "stop") == "stop"


def test_store_lifecycle_timestamps_exclude_paused_time() -> None:
    store = make_store()
    rec = store.start(parse_start_body({"meeting_id": "m"}))
    assert (rec.status, rec.invoked_ms) == ("INVOKED", T0)
    store.clock.advance(10)  # lazily: RECORDING at exactly T0 + 2 s
    store.run_due()
    assert rec.status == "RECORDING"
    assert rec.started_ms == T0 + 2000
    store.control(rec.id, "pause")  # at +10 s: 8 s recorded
    store.clock.advance(100)
    store.control(rec.id, "resume")  # at +110 s
    store.clock.advance(7)
    store.control(rec.id, "stop")  # at +117 s: 15 s recorded
    assert rec.status == "UPLOADING"
    assert rec.stopped_ms == T0 + 117_000
    assert rec.duration_s == 15
    assert rec.stop_reason is not None
    assert rec.stop_reason["reason"] == "API_CALL"
    store.clock.advance(3)
    store.run_due()
    assert rec.status == "UPLOADED"
    assert rec.file_size == compute_file_size(rec.id, 15, 8192)
    assert rec.expiry_ms == T0 + 120_000 + 7 * 86_400_000


def test_store_short_recording_errors_and_max_seconds_auto_stops() -> None:
    store = make_store()
    short = store.start(parse_start_body({"meeting_id": "a"}))
    store.clock.advance(4)
    store.control(short.id, "stop")  # 2 s recorded < 5 s
    assert short.status == "ERRORED"
    assert short.file_size is None

    capped = store.start(parse_start_body({"meeting_id": "b", "max_seconds": 60}))
    store.clock.advance(1000)  # everything happens lazily, at the right times
    store.run_due()
    assert capped.status == "UPLOADED"
    assert capped.stopped_ms == capped.invoked_ms + 62_000
    assert capped.duration_s == 60
    assert capped.stop_reason == {"reason": "ALL_PEERS_LEFT"}


def test_store_conflicts_and_allow_multiple() -> None:
    store = make_store()
    first = store.start(parse_start_body({"meeting_id": "m"}))
    with pytest.raises(EmulatorHTTPError) as info:
        store.start(parse_start_body({"meeting_id": "m"}))
    assert info.value.status == 409
    assert first.id in info.value.message
    second = store.start(parse_start_body({"meeting_id": "m", "allow_multiple_recordings": True}))
    assert store.get_active("m") is second
    store.control(second.id, "stop")
    store.control(first.id, "stop")
    with pytest.raises(EmulatorHTTPError) as info:
        store.get_active("m")
    assert info.value.status == 404


def test_store_list_cache_sees_mutations_and_expiry() -> None:
    store = make_store(url_ttl=100.0, upload_delay=0.0)
    q = parse_list_query([("expired", "false")])
    assert store.query(q) == []
    rec = store.start(parse_start_body({"meeting_id": "m"}))
    store.clock.advance(10)
    store.control(rec.id, "stop")
    store.run_due()
    assert store.query(q) == [rec]  # cache invalidated by the upload
    store.clock.advance(99)
    assert store.query(q) == [rec]
    store.clock.advance(1)  # expiry reached with no mutation: cache must not go stale
    assert store.query(q) == []
    assert store.query(parse_list_query([("expired", "true")])) == [rec]


def test_store_listing_is_fast_at_scale() -> None:
    store = make_store()
    store.load(
        *generate_seed_data(
            seed=3,
            recordings=20_000,
            meetings=500,
            now_ms=T0,
            config=store.config,
            caller={},
        )
    )
    started = time.process_time()
    for page in range(1, 201):
        items, window = store.list_page(
            parse_list_query([("page_no", str(page)), ("per_page", "100")])
        )
        assert len(items) == 100
    assert window.end_offset == 20_000
    assert time.process_time() - started < 1.5


# -- seeding ---------------------------------------------------------------------------------


def test_seed_data_is_deterministic_and_varied() -> None:
    cfg = LifecycleConfig()
    a = generate_seed_data(seed=5, recordings=2000, meetings=50, now_ms=T0, config=cfg, caller={})
    b = generate_seed_data(seed=5, recordings=2000, meetings=50, now_ms=T0, config=cfg, caller={})
    c = generate_seed_data(seed=6, recordings=2000, meetings=50, now_ms=T0, config=cfg, caller={})
    assert [r.id for r in a[1]] == [r.id for r in b[1]]
    assert [(r.status, r.invoked_ms, r.file_size) for r in a[1]] == [
        (r.status, r.invoked_ms, r.file_size) for r in b[1]
    ]
    assert [m.title for m in a[0]] == [m.title for m in b[0]]
    assert {r.id for r in a[1]}.isdisjoint({r.id for r in c[1]})
    meetings, recs = a
    statuses = Counter(r.status for r in recs)
    assert statuses["UPLOADED"] > 1500
    assert statuses["ERRORED"] > 50
    assert statuses["RECORDING"] + statuses["PAUSED"] == 40
    expired = [r for r in recs if r.expiry_ms is not None and r.expiry_ms <= T0]
    valid = [r for r in recs if r.expiry_ms is not None and r.expiry_ms > T0]
    assert expired
    assert valid
    active_per_meeting = Counter(r.meeting_id for r in recs if r.status in ("RECORDING", "PAUSED"))
    assert max(active_per_meeting.values()) == 1
    assert all(r.invoked_ms >= T0 - 30 * 86_400_000 for r in recs)
    assert len(meetings) == 50


# -- downloads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, 1000)),
        ("bytes=-10", (990, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=990-5000", (990, 1000)),
        ("bytes=0-1,5-9", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize(
    "header", ["bytes=1000-", "bytes=5-4", "bytes=-0", "bytes=-", "items=0-1", "bytes=a-b"]
)
def test_parse_range_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiableError):
        parse_range(header, 1000)


@given(start=st.integers(0, 5000), length=st.integers(0, 3000), chunk=st.integers(16, 1024))
def test_file_bytes_are_seekable(start: int, length: int, chunk: int) -> None:
    whole = expected_file_bytes("rec-1", "video", 8000)
    part = b"".join(iter_file_bytes("rec-1", "video", start, start + length, chunk))
    assert part == whole[start : start + length]


def test_file_bytes_depend_on_id_and_kind() -> None:
    video = expected_file_bytes("rec-1", "video", 64)
    assert len(video) == 64
    assert video != expected_file_bytes("rec-1", "audio", 64)
    assert video != expected_file_bytes("rec-2", "video", 64)
    big = 3 * 256 * 1024 + 5
    assert (
        expected_file_sha256("rec-1", "video", big)
        == hashlib.sha256(expected_file_bytes("rec-1", "video", big)).hexdigest()
    )


def test_url_signer() -> None:
    signer = UrlSigner(b"k", "http://127.0.0.1:9")
    url = signer.url("r", "video", 1700000000)
    sig = signer.signature("r", "video", 1700000000)
    assert url == f"http://127.0.0.1:9/files/r/video?X-Expires=1700000000&X-Signature={sig}"
    assert signer.verify("r", "video", "1700000000", sig)
    assert not signer.verify("r", "audio", "1700000000", sig)
    assert not signer.verify("r", "video", "1700000001", sig)
    assert not signer.verify("r", "video", "abc", sig)


def test_url_for_signs_a_recordings_file_until_its_expiry() -> None:
    signer = UrlSigner(b"k", "http://127.0.0.1:9")
    rec = Recording("r", "m", "UPLOADED", T0, "f.mp4", expiry_ms=1_700_000_000_999)
    url = signer.url_for(rec, "audio")
    assert url == signer.url("r", "audio", 1_700_000_000)
    query = dict(pair.split("=") for pair in url.partition("?")[2].split("&"))
    assert signer.verify("r", "audio", query["X-Expires"], query["X-Signature"])


# -- faults ----------------------------------------------------------------------------------


def test_fault_schedule_every_first_and_round_robin() -> None:
    sched = FaultSchedule(FaultConfig(every=3, first=1, kinds=("500", "reset")))
    got = [sched.next_fault("api", "GET") for _ in range(9)]
    assert got == ["500", None, "reset", None, None, "500", None, None, "reset"]
    assert sched.injected == 4


def test_fault_schedule_rate_is_seeded() -> None:
    def pattern(seed: int) -> list[str | None]:
        sched = FaultSchedule(FaultConfig(seed=seed, rate=0.3, kinds=("429", "502")))
        return [sched.next_fault("api", "POST") for _ in range(200)]

    a = pattern(11)
    assert a == pattern(11)
    assert a != pattern(12)
    hits = sum(k is not None for k in a)
    assert 35 <= hits <= 85


def test_fault_schedule_filters_and_limits() -> None:
    sched = FaultSchedule(FaultConfig(every=1, routes="storage", methods=("get",), max_faults=2))
    assert sched.next_fault("api", "GET") is None
    assert sched.next_fault("storage", "HEAD") is None
    assert [sched.next_fault("storage", "GET") for _ in range(3)] == ["500", "500", None]


@pytest.mark.parametrize(
    "kwargs",
    [{"rate": 1.5}, {"every": 0}, {"kinds": ("404",)}, {"kinds": ()}, {"routes": "cdn"}],
)
def test_fault_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any validation message
        FaultConfig(**kwargs)  # type: ignore[arg-type]


def test_rate_limiter_layers_fixed_windows_per_token() -> None:
    mono = FakeMonotonic()
    rules = [RateLimitRule(3, 10.0, "short"), RateLimitRule(4, 100.0, "long")]
    limiter = RateLimiter(rules, monotonic=mono)
    first = limiter.acquire("a")
    assert first.allowed
    assert [(s.rule.name, s.remaining, s.reset) for s in first.states] == [
        ("short", 2, 10.0),
        ("long", 3, 100.0),
    ]
    mono.t += 4
    assert limiter.acquire("a").allowed
    assert limiter.acquire("a").allowed
    refused = limiter.acquire("a")  # "short" is spent until its window ends
    assert refused.retry_after == pytest.approx(6.0)
    assert [s.remaining for s in refused.states] == [0, 1]
    assert limiter.acquire("b").allowed  # another token has its own budget
    mono.t += 6
    fourth = limiter.acquire("a")  # a new "short" window; "long" now spent
    assert fourth.allowed
    assert [s.remaining for s in fourth.states] == [2, 0]
    assert limiter.acquire("a").retry_after == pytest.approx(90.0)  # the layer "long"
    windows = limiter.windows
    assert [(w.start, w.served, w.refused) for w in windows[("a", "short")]] == [
        (100.0, 3, 1),
        (110.0, 1, 1),
    ]
    assert [(w.served, w.refused) for w in windows[("a", "long")]] == [(4, 2)]
    assert [(w.served, w.refused) for w in windows[("b", "short")]] == [(1, 0)]


def test_rate_limiter_block_refuses_everything_for_its_length() -> None:
    mono = FakeMonotonic()
    limiter = RateLimiter([RateLimitRule(2, 10.0, "global", block=300.0)], monotonic=mono)
    assert limiter.acquire("t").allowed
    assert limiter.acquire("t").allowed
    assert limiter.acquire("t").retry_after == pytest.approx(300.0)
    mono.t += 100  # the window is long over, the block is not
    blocked = limiter.acquire("t")
    assert blocked.retry_after == pytest.approx(200.0)
    assert blocked.states[0].reset == pytest.approx(200.0)
    mono.t += 200
    assert limiter.acquire("t").allowed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ((5, 2.0), (RateLimitRule(5, 2.0),)),
        (RateLimitRule(5, 2.0, "x"), (RateLimitRule(5, 2.0, "x"),)),
        (CLOUDFLARE_RATE_LIMITS, CLOUDFLARE_RATE_LIMITS),
    ],
)
def test_rate_limit_option_forms(value: Any, expected: tuple[RateLimitRule, ...]) -> None:
    assert to_rules(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        (0, 1.0),
        (1, 0.0),
        [RateLimitRule(1, 1.0), RateLimitRule(2, 2.0)],  # two rules named "default"
        ["not a rule"],
        (),
    ],
)
def test_rate_limit_option_rejects(value: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any validation message
        to_rules(value)


def test_rate_limit_rule_validation() -> None:
    with pytest.raises(ValueError, match="name"):
        RateLimitRule(1, 1.0, 'bad"name')
    with pytest.raises(ValueError, match="block"):
        RateLimitRule(1, 1.0, block=0.0)


def test_format_retry_after() -> None:
    assert format_retry_after(1.0) == "1"
    assert format_retry_after(0.25) == "0.25"
    assert format_retry_after(0.2, round_up=True) == "1"
    assert format_retry_after(3.4, round_up=True) == "4"


def test_caller_ids_are_uuids_whatever_the_app_id() -> None:
    from realtimekit_async.emulator._util import caller_id

    app = "9c2f6e1a-3b4d-4e5f-8a7b-6c5d4e3f2a1b"
    assert caller_id(app) == app
    derived = caller_id("app456")
    assert str(uuid.UUID(derived)) == derived
    assert caller_id("app456") == derived != caller_id("app457")
