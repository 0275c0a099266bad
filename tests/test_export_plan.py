"""The export's pure decisions, without network or files."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from realtimekit_async._converter import converter
from realtimekit_async._export_plan import (
    LOCK_NAME,
    MANIFEST_NAME,
    MAX_NAME_LENGTH,
    PART_STATE_SUFFIX,
    PART_SUFFIX,
    Decision,
    ExportReport,
    FileKind,
    Local,
    ManifestContents,
    ManifestEntry,
    PartState,
    RateGuard,
    Step,
    clock_offset,
    declared_size_problem,
    digest_decision,
    display_url,
    download_url_problem,
    encode_entry,
    encode_part_state,
    file_name,
    if_range,
    is_expired,
    local_decision,
    needs_refresh,
    new_part_state,
    on_body_end,
    on_error,
    on_response,
    parse_content_range,
    parse_manifest,
    parse_part_state,
    plan_recording,
    resume_offset,
    safe_id,
    server_sha256,
    size_limit,
)
from realtimekit_async._models import Recording, RecordingStatus
from realtimekit_async._policies import RetryPolicy
from realtimekit_async._sansio import Failure

UUID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
POLICY = RetryPolicy(max_retries=2, initial_delay=1.0, max_delay=8.0)
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}


def headers(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in values.items()})


# -- names --------------------------------------------------------------------------------


def test_plain_names_keep_id_and_name() -> None:
    assert file_name(UUID, "meeting_2025.mp4", FileKind.VIDEO) == f"{UUID}_meeting_2025.mp4"
    assert file_name(UUID, "meeting_2025.mp4", FileKind.AUDIO) == f"{UUID}_meeting_2025.audio.mp4"


@pytest.mark.parametrize(
    "hostile",
    [
        "../../etc/passwd",
        "/abs/path.mp4",
        "a\\b.mp4",
        "C:\\Windows\\x.mp4",
        "nul\x00byte.mp4",
        "ctrl\x01\x1f\x7f.mp4",
        "x" * 300 + ".mp4",
        "..",
        ".",
        "",
        "CON",
        "con.mp4",
        "LPT1.txt",
        "name. ",
        "réunion 🎥.mp4",
    ],
)
def test_hostile_names_become_one_safe_component(hostile: str) -> None:
    for kind in FileKind:
        name = file_name(UUID, hostile, kind)
        assert "/" not in name
        assert "\\" not in name
        assert name not in {".", ".."}
        assert ".." not in name
        assert all(0x20 < ord(c) < 0x7F for c in name)
        assert len(name) <= MAX_NAME_LENGTH
        assert name.startswith(f"{UUID}_")
        assert name.split(".")[0].upper() not in WINDOWS_DEVICES
        assert not name.endswith((".", " "))


def test_long_names_keep_their_extension() -> None:
    name = file_name(UUID, "y" * 500 + ".webm", FileKind.AUDIO)
    assert len(name) == MAX_NAME_LENGTH
    assert name.endswith("y.audio.webm")


def test_traversal_keeps_the_readable_part() -> None:
    assert file_name(UUID, "../../etc/passwd", FileKind.VIDEO) == f"{UUID}_etc_passwd"


def test_windows_device_names_get_prefixed() -> None:
    assert file_name("con", "x.mp4", FileKind.VIDEO).startswith("con_")  # "con_x" is no device
    assert file_name(UUID, "", FileKind.VIDEO) == f"{UUID}_recording"


@pytest.mark.parametrize(
    ("raw", "kept"), [(UUID, True), ("abc-123", True), ("ABC", False), ("a_b", False)]
)
def test_safe_id_passes_plain_ids_and_tags_others(raw: str, kept: bool) -> None:
    assert (safe_id(raw) == raw) is kept
    assert "_" not in safe_id(raw)
    assert "." not in safe_id(raw)


def test_ids_that_clean_to_the_same_text_stay_distinct() -> None:
    ids = ["a/b", "a_b", "a-b", "A-B", "a\\b", "../a-b", ""]
    assert len({safe_id(i) for i in ids}) == len(ids)
    # And the prefix can never run into the name: "x" + "a_b.mp4" vs "x_a" + "b.mp4".
    assert file_name("x", "a_b.mp4", FileKind.VIDEO) != file_name("x_a", "b.mp4", FileKind.VIDEO)


@given(
    st.text(min_size=0, max_size=80),
    st.text(min_size=0, max_size=400),
    st.text(min_size=0, max_size=80),
    st.text(min_size=0, max_size=400),
    st.sampled_from(list(FileKind)),
)
def test_names_are_safe_and_injective_on_ids(
    id_a: str, name_a: str, id_b: str, name_b: str, kind: FileKind
) -> None:
    a = file_name(id_a, name_a, kind)
    assert len(a) <= MAX_NAME_LENGTH
    assert "/" not in a
    assert "\\" not in a
    assert "\x00" not in a
    assert ".." not in a
    assert a.split(".")[0].upper() not in WINDOWS_DEVICES
    if id_a != id_b:
        assert a != file_name(id_b, name_b, kind)
    assert a != file_name(
        id_a, name_a, FileKind.VIDEO if kind is FileKind.AUDIO else FileKind.AUDIO
    )


def test_audio_and_video_names_differ_even_when_truncation_meets_audio_mark() -> None:
    # The video's stem cut at 139 characters ends in ".audio"; the audio's, cut 6
    # characters earlier, gets ".audio" appended: the same name, before the fix.
    hostile = "y" * 133 + ".audio" + "z" * 50 + ".mp4"
    video = file_name(UUID, hostile, FileKind.VIDEO)
    assert video != file_name(UUID, hostile, FileKind.AUDIO)
    assert video.endswith("y_audio.mp4")
    assert file_name(UUID, "talk.AUDIO.mp4", FileKind.VIDEO) == f"{UUID}_talk_AUDIO.mp4"


def test_no_final_name_looks_like_a_part_or_state_file() -> None:
    assert file_name(UUID, "x.mp4.part", FileKind.VIDEO) == f"{UUID}_x.mp4_part"
    assert file_name(UUID, "x.part.meta", FileKind.AUDIO) == f"{UUID}_x.part_meta.audio"
    assert file_name(UUID, "x.PART", FileKind.VIDEO) == f"{UUID}_x_PART"


def test_an_id_equal_to_another_ids_hashed_form_gets_its_own_name() -> None:
    hashed = safe_id("Weird Id")
    assert hashed != "Weird Id"
    assert safe_id(hashed) != hashed  # it looks hashed, so it is hashed in turn
    assert file_name(hashed, "m.mp4", FileKind.VIDEO) != file_name(
        "Weird Id", "m.mp4", FileKind.VIDEO
    )


_NAME_PIECES = st.sampled_from(
    [
        *(".audio", ".AUDIO", ".part", ".Part", ".meta", ".mp4", ".", "_", "-", "a", "/", "é"),
        *("y" * 60, "x" * 13),
    ]
)
_HOSTILE_NAMES = st.lists(_NAME_PIECES, max_size=14).map("".join) | st.text(max_size=300)
_HOSTILE_IDS = (
    st.text(max_size=70)
    | st.text(alphabet="abcdef0123456789-", min_size=1, max_size=70)
    | st.just(UUID)
)


@given(
    st.lists(st.tuples(_HOSTILE_IDS, _HOSTILE_NAMES), max_size=6),
    st.lists(st.integers(0, 5), max_size=3),
)
def test_every_name_in_a_destination_is_unique(
    recordings: list[tuple[str, str]], hashed_twins: list[int]
) -> None:
    # Add recordings whose id is another one's sanitised-and-hashed form.
    for i in hashed_twins:
        if i < len(recordings):
            recordings.append((safe_id(recordings[i][0]), recordings[i][1]))
    by_id = dict(recordings)
    names = [MANIFEST_NAME, LOCK_NAME]
    for rid, output in by_id.items():
        for kind in FileKind:
            name = file_name(rid, output, kind)
            names += [name, name + PART_SUFFIX, name + PART_STATE_SUFFIX]
    lowered = [n.lower() for n in names]  # case-insensitive file systems too
    assert len(set(lowered)) == len(lowered)


def test_display_url_drops_the_signature() -> None:
    url = "https://bucket.r2.example/files/abc/video?X-Expires=1&X-Signature=deadbeef"
    assert display_url(url) == "bucket.r2.example/files/abc/video"


# -- which recordings ------------------------------------------------------------------------


def recording(**overrides: object) -> Recording:
    fields: dict[str, object] = {
        "id": UUID,
        "status": "UPLOADED",
        "invoked_time": "2025-01-01T00:00:00.000Z",
        "output_file_name": "m.mp4",
        "download_url": "https://s.example/v?sig=1",
        "file_size": 123,
    }
    fields.update(overrides)
    return converter.structure(fields, Recording)


def test_plan_video_and_audio() -> None:
    files, reason = plan_recording(
        recording(audio_download_url="https://s.example/a?sig=1"), include_audio=True
    )
    assert reason is None
    assert [(f.kind, f.expected_size) for f in files] == [
        (FileKind.VIDEO, 123),
        (FileKind.AUDIO, None),
    ]
    files, _ = plan_recording(
        recording(audio_download_url="https://s.example/a?sig=1"), include_audio=False
    )
    assert [f.kind for f in files] == [FileKind.VIDEO]


@pytest.mark.parametrize(
    ("overrides", "why"),
    [({"status": "RECORDING"}, "status RECORDING"), ({"download_url": None}, "no download URL")],
)
def test_plan_ignores_what_has_no_file(overrides: dict[str, object], why: str) -> None:
    files, reason = plan_recording(recording(**overrides), include_audio=True)
    assert files == ()
    assert reason is not None
    assert why in reason


def test_refresh_and_expiry() -> None:
    margin = timedelta(minutes=5)
    assert not needs_refresh(None, NOW, margin)
    assert not needs_refresh(NOW + timedelta(minutes=6), NOW, margin)
    assert needs_refresh(NOW + timedelta(minutes=5), NOW, margin)
    assert needs_refresh(NOW - timedelta(days=1), NOW, margin)
    assert not is_expired(None, NOW)
    assert not is_expired(NOW + timedelta(seconds=1), NOW)
    assert is_expired(NOW, NOW)


@pytest.mark.parametrize(
    ("url", "base", "allow", "refused"),
    [
        (
            "https://s.example/f?X-Signature=SECRET",
            "https://api.cloudflare.com/client/v4",
            False,
            False,
        ),
        (
            "http://s.example/f?X-Signature=SECRET",
            "https://api.cloudflare.com/client/v4",
            False,
            True,
        ),
        (
            "http://s.example/f?X-Signature=SECRET",
            "https://api.cloudflare.com/client/v4",
            True,
            False,
        ),
        ("http://127.0.0.1:9/f?X-Signature=SECRET", "http://127.0.0.1:8/client/v4", False, False),
        ("http://[::1]:9/f?X-Signature=SECRET", "http://localhost:8/client/v4", False, False),
        ("http://s.example/f?X-Signature=SECRET", "http://api.example/client/v4", False, True),
        ("ftp://s.example/f", "https://api.cloudflare.com/client/v4", True, True),
        ("file:///etc/passwd", "http://127.0.0.1:8/client/v4", True, True),
    ],
)
def test_insecure_downloads(url: str, base: str, allow: bool, refused: bool) -> None:
    reason = download_url_problem(url, base_url=URL(base), allow_insecure=allow)
    assert (reason is not None) is refused
    if reason is not None:
        assert "SECRET" not in reason


# -- local state ----------------------------------------------------------------------------


def entry(**overrides: object) -> ManifestEntry:
    fields: dict[str, object] = {
        "recording_id": UUID,
        "meeting_id": "m-1",
        "status": RecordingStatus.UPLOADED,
        "kind": FileKind.VIDEO,
        "path": f"{UUID}_m.mp4",
        "bytes": 10,
        "sha256": "ab" * 32,
        "exported_at": NOW,
    }
    fields.update(overrides)
    return ManifestEntry(**fields)  # type: ignore[arg-type]


def test_skip_needs_manifest_and_file_to_agree() -> None:
    name = f"{UUID}_m.mp4"
    untouched = entry(mtime_ns=7)
    assert local_decision(untouched, name, (10, 7), 10) is Local.SKIP
    assert local_decision(untouched, name, (10, 7), None) is Local.SKIP
    assert local_decision(untouched, name, (10, 8), 10) is Local.VERIFY  # modified since
    assert local_decision(entry(), name, (10, 7), 10) is Local.VERIFY  # an older manifest
    assert local_decision(None, name, (10, 7), 10) is Local.FETCH
    assert local_decision(untouched, name, None, 10) is Local.FETCH  # missing, or a link
    assert local_decision(untouched, name, (9, 7), 10) is Local.FETCH  # shorter than listed
    assert local_decision(untouched, name, (10, 7), 11) is Local.FETCH  # size changed
    assert local_decision(untouched, "other.mp4", (10, 7), 10) is Local.FETCH  # renamed


def state(**overrides: object) -> PartState:
    fields: dict[str, object] = {
        "etag": '"v1"',
        "last_modified": None,
        "total": 100,
        "size": 40,
        "sha256": "ab" * 32,
    }
    fields.update(overrides)
    return PartState(**fields)  # type: ignore[arg-type]


def test_resume_offset_trusts_only_a_recorded_validated_prefix() -> None:
    assert resume_offset(40, state(), 100) == 40
    assert resume_offset(55, state(), 100) == 40  # bytes past the record are not trusted
    assert resume_offset(40, state(), None) == 40
    assert resume_offset(None, state(), 100) == 0
    assert resume_offset(40, None, 100) == 0  # no state file: start afresh
    assert resume_offset(30, state(), 100) == 0  # shorter than recorded
    assert resume_offset(40, state(etag=None), 100) == 0  # nothing to send as If-Range
    assert resume_offset(40, state(etag=None, last_modified="Sat, 01 Mar 2025"), 100) == 40
    assert resume_offset(40, state(total=90), 100) == 0  # another size now
    assert resume_offset(40, state(size=0), 100) == 0
    assert resume_offset(40, state(size=40), 30) == 0


def test_part_state_round_trips_and_takes_only_strong_etags() -> None:
    assert parse_part_state(encode_part_state(state())) == state()
    assert parse_part_state(b'{"etag": 1') is None
    assert parse_part_state(None) is None
    fresh = new_part_state(headers(ETag='"e"', Last_Modified="Sat, 01 Mar 2025"), 100)
    assert (fresh.etag, fresh.size, fresh.total) == ('"e"', 0, 100)
    weak = new_part_state(headers(ETag='W/"e"', Last_Modified="Sat, 01 Mar 2025"), None)
    assert if_range(weak) == "Sat, 01 Mar 2025"
    assert if_range(new_part_state(headers(), None)) is None


# -- answers -----------------------------------------------------------------------------------


def respond(
    status: int,
    offset: int = 0,
    refreshed: bool = False,
    resumed: PartState | None = None,
    **hdrs: str,
) -> Decision:
    return on_response(
        status,
        headers(**hdrs),
        offset=offset,
        attempt=0,
        policy=POLICY,
        refreshed=refreshed,
        state=resumed,
    )


def test_200_writes_from_zero_even_when_resuming() -> None:
    assert respond(200, Content_Length="50") == Decision(Step.WRITE, start=0, total=50)
    assert respond(200, offset=20, Content_Length="50") == Decision(Step.WRITE, start=0, total=50)
    assert respond(200).total is None


def test_206_appends_only_at_the_offset() -> None:
    assert respond(206, offset=20, Content_Range="bytes 20-49/50") == Decision(
        Step.WRITE, start=20, total=50
    )
    assert respond(206, offset=20).step is Step.RESTART
    assert respond(206, offset=0, Content_Range="bytes 5-9/10").step is Step.FAIL


@pytest.mark.parametrize(
    ("content_range", "extra"),
    [
        ("bytes 0-49/50", {}),  # not where we asked
        ("bytes 20-49/*", {}),  # total unknown: cannot check the end
        ("bytes 20-39/50", {}),  # stops short of the end we asked for
        ("bytes 20-59/60", {}),  # the file grew since the .part was started
        ("bytes 20-99/100", {"Content_Length": "10"}),  # disagrees with itself
        ("bytes 20-99/100", {"ETag": '"v2"'}),  # another version of the file
    ],
)
def test_206_that_does_not_continue_the_part_exactly_restarts(
    content_range: str, extra: dict[str, str]
) -> None:
    answer = headers(Content_Range=content_range, **extra)
    decision = on_response(
        206, answer, offset=20, attempt=0, policy=POLICY, refreshed=False, state=state(size=20)
    )
    assert decision.step is Step.RESTART
    ok = respond(206, offset=20, resumed=state(size=20), Content_Range="bytes 20-99/100")
    assert ok == Decision(Step.WRITE, start=20, total=100)


def test_encoded_bodies_are_refused_not_inflated() -> None:
    for status in (200, 206):
        decision = respond(status, offset=20, Content_Encoding="gzip")
        assert decision.step is Step.FAIL
        assert "gzip" in decision.reason
    assert respond(200, Content_Encoding="identity").step is Step.WRITE


def test_416_restarts_a_resume() -> None:
    assert respond(416, offset=50).step is Step.RESTART
    assert respond(416, offset=0).step is Step.FAIL


def test_403_refreshes_once() -> None:
    assert respond(403).step is Step.REFRESH
    failed = respond(403, refreshed=True)
    assert failed.step is Step.FAIL
    assert "403" in failed.reason


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_retry_with_backoff(status: int) -> None:
    assert respond(status) == Decision(Step.RETRY, delay=1.0, reason=f"HTTP {status}")
    later = on_response(status, headers(), offset=0, attempt=2, policy=POLICY, refreshed=False)
    assert later.step is Step.FAIL
    assert "after 3 attempts" in later.reason


def test_429_honours_retry_after() -> None:
    assert respond(429, Retry_After="7").delay == 7.0
    too_long = respond(429, Retry_After="3600")
    assert too_long.step is Step.FAIL


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_other_statuses_fail(status: int) -> None:
    assert respond(status).step is Step.FAIL


def test_errors_without_answer_retry() -> None:
    for failure in Failure:
        decision = on_error(failure, "reset", attempt=1, policy=POLICY)
        assert decision == Decision(Step.RETRY, delay=2.0, reason="reset")
    assert on_error(Failure.AFTER_SEND, "reset", attempt=2, policy=POLICY).step is Step.FAIL


def test_content_range() -> None:
    assert parse_content_range("bytes 0-9/10") == (0, 9, 10)
    assert parse_content_range("BYTES 5-9/*") == (5, 9, None)
    assert parse_content_range("bytes 9-5/10") is None
    assert parse_content_range("items 0-9/10") is None
    assert parse_content_range(None) is None


def test_body_end() -> None:
    def end(written: int, total: int | None, expected: int | None) -> Decision:
        return on_body_end(written, total, expected, ceiling=1000, attempt=0, policy=POLICY)

    assert end(10, 10, 10).step is Step.DONE
    assert end(10, None, None).step is Step.DONE
    assert end(10, 10, None).step is Step.DONE
    assert end(5, 10, 10).step is Step.RETRY  # truncated: resume
    assert end(5, None, 10).step is Step.RETRY  # no Content-Length, short of file_size
    assert end(11, 10, None).step is Step.FAIL
    assert end(11, None, 10).step is Step.FAIL
    assert end(1001, None, None).step is Step.FAIL  # no size known: the ceiling bounds it
    assert end(1001, None, None).discard  # those bytes are not the file: not kept
    assert end(1000, None, None).step is Step.DONE
    assert declared_size_problem(10, 10, 5) is None
    assert declared_size_problem(None, 10, 5) is None
    problem = declared_size_problem(9, 10, 5)
    assert problem is not None
    assert "file_size is 10" in problem
    assert declared_size_problem(1001, None, 1000) is not None  # announced past the ceiling
    assert size_limit(None, None, 1000) == 1000
    assert size_limit(500, None, 1000) == 500
    assert size_limit(None, 20, 1000) == 20


def test_rate_guard_stops_a_drip_after_one_window() -> None:
    guard = RateGuard(window=60.0, min_rate=1024.0, started=0.0)
    assert not any(guard.too_slow(float(t), 1) for t in range(1, 60))  # a byte a second
    assert guard.too_slow(60.0, 1)
    fast = RateGuard(window=1.0, min_rate=10.0, started=0.0)
    assert not any(fast.too_slow(t / 10, 100) for t in range(1, 100))
    off = RateGuard(window=1.0, min_rate=0.0, started=0.0)
    assert not off.too_slow(100.0, 0)


def test_clock_offset_from_the_date_header() -> None:
    ahead = clock_offset("Sat, 01 Mar 2025 13:00:00 GMT", NOW)
    assert ahead == timedelta(hours=1)
    assert clock_offset(None, NOW) == timedelta(0)
    assert clock_offset("not a date", NOW) == timedelta(0)
    assert clock_offset("Sat, 01 Mar 99999999999 13:00:00 GMT", NOW) == timedelta(0)


@pytest.mark.parametrize(
    "url", ["https://xn--/x", "https://" + "a" * 300 + ".example/x", "https:///x", "::"]
)
def test_malformed_download_urls_are_a_reason_not_an_exception(url: str) -> None:
    base = URL("https://api.cloudflare.com/client/v4")
    problem = download_url_problem(url, base_url=base, allow_insecure=False)
    assert problem is not None
    assert display_url(url) in problem or "<invalid URL>" in problem


# -- manifest ---------------------------------------------------------------------------------


def test_manifest_line_round_trips_through_the_converter() -> None:
    line = encode_entry(entry())
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {
        "recording_id": UUID,
        "meeting_id": "m-1",
        "status": "UPLOADED",
        "kind": "video",
        "path": f"{UUID}_m.mp4",
        "bytes": 10,
        "sha256": "ab" * 32,
        "exported_at": "2025-03-01T12:00:00.000Z",
    }
    assert parse_manifest([line]).entries == {(UUID, FileKind.VIDEO): entry()}
    stamped = encode_entry(entry(mtime_ns=5))
    assert parse_manifest([stamped]).entries[(UUID, FileKind.VIDEO)].mtime_ns == 5


def test_manifest_tolerates_torn_and_foreign_lines_and_keeps_the_latest() -> None:
    first = encode_entry(entry(bytes=5))
    audio = encode_entry(entry(kind=FileKind.AUDIO, path="a"))
    latest = encode_entry(entry(bytes=10))
    torn = latest[: len(latest) // 2]
    lines = [first, b"\n", b"not json\n", b'{"other": 1}\n', audio, latest, torn]
    parsed = parse_manifest(lines)
    assert parsed == ManifestContents(
        {
            (UUID, FileKind.VIDEO): entry(bytes=10),
            (UUID, FileKind.AUDIO): entry(kind=FileKind.AUDIO, path="a"),
        },
        complete_length=sum(map(len, lines[:-1])),
        torn=True,
        bad_lines=2,
    )
    foreign = parse_manifest([encode_entry(entry()).replace(b'"video"', b'"subtitles"')])
    assert foreign.entries == {}
    assert not parse_manifest([first]).torn


def test_report_serialises_through_the_converter() -> None:
    report = ExportReport(
        exported=(entry(),), skipped=(), failed=(), expired=(), ignored=(), bytes=10
    )
    doc = converter.unstructure(report)
    assert doc["exported"][0]["kind"] == "video"
    assert doc["skipped"] == []
    assert doc["bytes"] == 10
    assert report.ok


def test_server_digests() -> None:
    digest = hashlib.sha256(b"file").digest()
    b64, hexed = base64.b64encode(digest).decode(), digest.hex()
    assert server_sha256(headers(Repr_Digest=f"sha-512=:AAAA:, sha-256=:{b64}:")) == hexed
    assert server_sha256(headers(x_amz_checksum_sha256=b64)) == hexed
    composite = headers(x_amz_checksum_sha256=b64, x_amz_checksum_type="COMPOSITE")
    assert server_sha256(composite) is None
    assert server_sha256(headers(Repr_Digest="sha-256=:not base64!:")) is None
    assert server_sha256(headers(Repr_Digest="sha-256=:AAAA:")) is None  # not 32 bytes
    assert server_sha256(headers()) is None
    assert new_part_state(headers(Repr_Digest=f"sha-256=:{b64}:"), 4).digest == hexed


def test_digest_decides_done_restart_or_fail() -> None:
    announced = state(digest="aa" * 32)
    assert digest_decision("aa" * 32, announced, resumed=True).step is Step.DONE
    assert digest_decision("bb" * 32, announced, resumed=True).step is Step.RESTART
    assert digest_decision("bb" * 32, announced, resumed=False).discard
    assert digest_decision("bb" * 32, state(), resumed=True).step is Step.DONE  # none known
    assert digest_decision("bb" * 32, None, resumed=False).step is Step.DONE
