"""The export's pure decisions, without network or files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from realtimekit_async._converter import converter
from realtimekit_async._export_plan import (
    MAX_NAME_LENGTH,
    Decision,
    ExportReport,
    FileKind,
    ManifestEntry,
    Step,
    declared_size_problem,
    display_url,
    encode_entry,
    file_name,
    insecure_download_reason,
    is_expired,
    needs_refresh,
    needs_separator,
    on_body_end,
    on_error,
    on_response,
    parse_content_range,
    parse_manifest,
    plan_recording,
    resume_offset,
    safe_id,
    should_skip,
)
from realtimekit_async._models import Recording, RecordingStatus
from realtimekit_async._sansio import Failure, RetryPolicy

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
    reason = insecure_download_reason(url, base_url=URL(base), allow_insecure=allow)
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


def test_should_skip_needs_manifest_and_file_to_agree() -> None:
    name = f"{UUID}_m.mp4"
    assert should_skip(entry(), name, 10, 10)
    assert should_skip(entry(), name, 10, None)
    assert not should_skip(None, name, 10, 10)
    assert not should_skip(entry(), name, None, 10)  # file missing
    assert not should_skip(entry(), name, 9, 10)  # file shorter than listed
    assert not should_skip(entry(), name, 10, 11)  # recording's size changed
    assert not should_skip(entry(), "other.mp4", 10, 10)  # named differently now


def test_resume_offset() -> None:
    assert resume_offset(None, 100) == 0
    assert resume_offset(0, 100) == 0
    assert resume_offset(40, 100) == 40
    assert resume_offset(100, 100) == 100  # the server answers 416 and we restart
    assert resume_offset(101, 100) == 0  # cannot be a prefix
    assert resume_offset(40, None) == 40


# -- answers -----------------------------------------------------------------------------------


def respond(status: int, offset: int = 0, refreshed: bool = False, **hdrs: str) -> Decision:
    return on_response(
        status, headers(**hdrs), offset=offset, attempt=0, policy=POLICY, refreshed=refreshed
    )


def test_200_writes_from_zero_even_when_resuming() -> None:
    assert respond(200, Content_Length="50") == Decision(Step.WRITE, start=0, total=50)
    assert respond(200, offset=20, Content_Length="50") == Decision(Step.WRITE, start=0, total=50)
    assert respond(200).total is None


def test_206_appends_only_at_the_offset() -> None:
    assert respond(206, offset=20, Content_Range="bytes 20-49/50") == Decision(
        Step.WRITE, start=20, total=50
    )
    assert respond(206, offset=20, Content_Range="bytes 20-49/*").total == 50
    assert respond(206, offset=20, Content_Range="bytes 0-49/50").step is Step.RESTART
    assert respond(206, offset=20).step is Step.RESTART
    assert respond(206, offset=0, Content_Range="bytes 5-9/10").step is Step.FAIL


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
        return on_body_end(written, total, expected, attempt=0, policy=POLICY)

    assert end(10, 10, 10).step is Step.DONE
    assert end(10, None, None).step is Step.DONE
    assert end(10, 10, None).step is Step.DONE
    assert end(5, 10, 10).step is Step.RETRY  # truncated: resume
    assert end(5, None, 10).step is Step.RETRY  # no Content-Length, short of file_size
    assert end(11, 10, None).step is Step.FAIL
    assert end(11, None, 10).step is Step.FAIL
    assert declared_size_problem(10, 10) is None
    assert declared_size_problem(None, 10) is None
    problem = declared_size_problem(9, 10)
    assert problem is not None
    assert "file_size is 10" in problem


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
    assert parse_manifest([line]) == {(UUID, FileKind.VIDEO): entry()}


def test_manifest_tolerates_torn_and_foreign_lines_and_keeps_the_latest() -> None:
    first = encode_entry(entry(bytes=5))
    audio = encode_entry(entry(kind=FileKind.AUDIO, path="a"))
    latest = encode_entry(entry(bytes=10))
    torn = latest[: len(latest) // 2]
    lines = [first, b"\n", b"not json\n", b'{"other": 1}\n', audio, latest, torn]
    parsed = parse_manifest(lines)
    assert parsed == {
        (UUID, FileKind.VIDEO): entry(bytes=10),
        (UUID, FileKind.AUDIO): entry(kind=FileKind.AUDIO, path="a"),
    }
    assert parse_manifest([encode_entry(entry()).replace(b'"video"', b'"subtitles"')]) == {}


def test_separator_only_after_a_torn_line() -> None:
    assert not needs_separator(b"")
    assert not needs_separator(b"\n")
    assert needs_separator(b"}")


def test_report_serialises_through_the_converter() -> None:
    report = ExportReport(exported=(entry(),), skipped=(), failed=(), ignored=(), bytes=10)
    doc = converter.unstructure(report)
    assert doc["exported"][0]["kind"] == "video"
    assert doc["skipped"] == []
    assert doc["bytes"] == 10
    assert report.ok
