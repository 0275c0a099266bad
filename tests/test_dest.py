"""The destination layer's pure decisions, without network: URLs, keys, settings, parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtimekit_async import ValidationError
from realtimekit_async._dest import (
    MAX_KEY_BYTES,
    MIN_PART_SIZE,
    IncompleteUpload,
    LocalDestination,
    ObjectDestination,
    S3Settings,
    Scheme,
    manifest_key,
    object_key,
    object_metadata,
    parse_destination,
    part_size_for,
    resolve_s3_settings,
    stale_uploads,
    stored_sha256,
)

S3 = ObjectDestination(Scheme.S3, "bucket", "exports/rtk")
SHA = "ab" * 32


@pytest.mark.parametrize(
    ("dest", "expected"),
    [
        ("s3://bucket/exports/rtk", S3),
        ("s3://bucket/exports/rtk/", S3),
        ("S3://bucket//exports/rtk", ObjectDestination(Scheme.S3, "bucket", "exports/rtk")),
        ("s3://my.bucket-1", ObjectDestination(Scheme.S3, "my.bucket-1", "")),
        ("s3://bucket/", ObjectDestination(Scheme.S3, "bucket", "")),
        ("gs://bucket/a", ObjectDestination(Scheme.GCS, "bucket", "a")),
        ("az://container/a/b", ObjectDestination(Scheme.AZURE, "container", "a/b")),
        ("s3://bucket/rés/ü", ObjectDestination(Scheme.S3, "bucket", "rés/ü")),
        ("exports", LocalDestination(Path("exports"))),
        ("/var/exports", LocalDestination(Path("/var/exports"))),
        ("file:///var/exports", LocalDestination(Path("/var/exports"))),
        (Path("rel/dir"), LocalDestination(Path("rel/dir"))),
    ],
)
def test_parse_destination(dest: str | Path, expected: object) -> None:
    assert parse_destination(dest) == expected


@pytest.mark.parametrize(
    ("dest", "problem"),
    [
        ("", "must not be empty"),
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("s3://", "not a valid bucket name"),
        ("s3://ab/x", "not a valid bucket name"),
        ("s3://Bucket/x", "not a valid bucket name"),
        ("s3://bu..cket/x", "not a valid bucket name"),
        ("s3://bucket/a/../b", "'..' segment"),
        ("s3://bucket/a/./b", "'..' segment"),
        ("s3://bucket/a//b", "doubled '/'"),
        ("s3://bucket/a\\b", "backslash"),
        ("s3://bucket/a\nb", "control character"),
        ("s3://bucket/a?versionId=1", "no query"),
    ],
)
def test_parse_destination_refuses(dest: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as info:
        parse_destination(dest)
    assert info.value.field == "dest"


def test_destination_str_round_trips() -> None:
    assert str(S3) == "s3://bucket/exports/rtk"
    assert parse_destination(str(S3)) == S3
    assert str(ObjectDestination(Scheme.S3, "bucket", "")) == "s3://bucket"


def test_object_key_mirrors_the_local_layout() -> None:
    assert object_key(S3, "rec_meeting.mp4") == "exports/rtk/rec_meeting.mp4"
    assert object_key(S3, "sub/rec.mp4") == "exports/rtk/sub/rec.mp4"
    assert object_key(ObjectDestination(Scheme.S3, "b0b", ""), "rec.mp4") == "rec.mp4"
    assert object_key(S3, "réunion 会议.mp4") == "exports/rtk/réunion 会议.mp4"
    assert object_key(S3, "a..b.mp4") == "exports/rtk/a..b.mp4"


@pytest.mark.parametrize(
    "name",
    ["", "/abs.mp4", "../up.mp4", "a/../../up.mp4", "a/./b", "a//b", "a\\..\\b", "nul\x00.mp4"],
)
def test_object_key_refuses_names_that_could_leave_the_prefix(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        object_key(S3, name)
    assert info.value.field == "name"


def test_object_key_refuses_the_manifest_folder_and_overlong_keys() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        object_key(S3, "manifest/run.jsonl")
    room = MAX_KEY_BYTES - len("exports/rtk/")
    assert len(object_key(S3, "x" * room)) == MAX_KEY_BYTES
    with pytest.raises(ValidationError, match="1024 bytes"):
        object_key(S3, "x" * (room + 1))
    with pytest.raises(ValidationError, match="1024 bytes"):  # counted in UTF-8 bytes
        object_key(S3, "é" * (room // 2 + 1))


@given(st.text(min_size=1, max_size=300))
def test_every_accepted_key_lies_strictly_under_the_prefix(name: str) -> None:
    try:
        key = object_key(S3, name)
    except ValidationError:
        return
    assert key.startswith("exports/rtk/")
    segments = key.split("/")
    assert ".." not in segments
    assert "" not in segments
    assert "." not in segments
    assert segments[2] != "manifest"


def test_manifest_key() -> None:
    assert manifest_key(S3, "20250102T030405Z-1a2b") == (
        "exports/rtk/manifest/20250102T030405Z-1a2b.jsonl"
    )
    assert manifest_key(ObjectDestination(Scheme.S3, "b0b", ""), "r1") == "manifest/r1.jsonl"
    for bad in ("", "../x", "a/b", "-lead", "x" * 129, "sp ace"):
        with pytest.raises(ValidationError):
            manifest_key(S3, bad)


# -- settings ---------------------------------------------------------------------------

ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAENV",
    "AWS_SECRET_ACCESS_KEY": "env-secret",
    "AWS_SESSION_TOKEN": "env-token",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ENDPOINT_URL": "https://minio.example.com",
}


def test_settings_from_the_standard_variables() -> None:
    assert resolve_s3_settings(ENV) == S3Settings(
        endpoint_url="https://minio.example.com",
        region="eu-west-1",
        access_key_id="AKIAENV",
        secret_access_key="env-secret",
        session_token="env-token",
    )
    specific = {
        **ENV,
        "AWS_REGION": "auto",
        "AWS_ENDPOINT_URL_S3": "https://acct.r2.cloudflarestorage.com",
    }
    settings = resolve_s3_settings(specific)
    assert settings.region == "auto"  # AWS_REGION wins over AWS_DEFAULT_REGION
    assert settings.endpoint_url == "https://acct.r2.cloudflarestorage.com"


def test_settings_in_code_win_and_are_never_completed_from_the_environment() -> None:
    settings = resolve_s3_settings(
        ENV,
        endpoint_url="https://s3.example.net",
        region="us-west-2",
        access_key_id="AKIACODE",
        secret_access_key="code-secret",
    )
    assert settings == S3Settings(
        endpoint_url="https://s3.example.net",
        region="us-west-2",
        access_key_id="AKIACODE",
        secret_access_key="code-secret",
        session_token=None,  # the environment's token belongs to the environment's key
    )
    with pytest.raises(ValidationError, match="go together"):
        resolve_s3_settings(ENV, access_key_id="AKIACODE")


def test_settings_without_anything_leave_botocore_its_chain() -> None:
    assert resolve_s3_settings({}) == S3Settings()
    with pytest.raises(ValidationError, match="go together"):
        resolve_s3_settings({"AWS_ACCESS_KEY_ID": "AKIA"})


def test_secrets_stay_out_of_repr() -> None:
    text = repr(resolve_s3_settings(ENV))
    assert "AKIAENV" in text
    assert "env-secret" not in text
    assert "env-token" not in text


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:9000", "http://localhost:4566", "http://[::1]:9000", "https://s3.x.io"],
)
def test_endpoint_accepted(endpoint: str) -> None:
    assert resolve_s3_settings({}, endpoint_url=endpoint).endpoint_url == endpoint


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("http://minio.internal:9000", "plain http on a non-loopback host"),
        ("http://10.0.0.5:9000", "plain http on a non-loopback host"),
        ("ftp://minio.example.com", "absolute http"),
        ("minio.example.com", "absolute http"),
        ("https://user:pw@s3.example.com", "credentials"),
        ("https://s3.example.com/?X-Amz-Signature=abc", "query"),
    ],
)
def test_endpoint_refused(endpoint: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as info:
        resolve_s3_settings({}, endpoint_url=endpoint)
    assert info.value.field == "endpoint_url"
    assert "pw" not in str(info.value)
    assert "X-Amz-Signature" not in str(info.value)


def test_plain_http_endpoint_from_the_environment_is_refused_too_unless_opted_in() -> None:
    env = {"AWS_ENDPOINT_URL": "http://minio.internal:9000"}
    with pytest.raises(ValidationError, match="allow_insecure_endpoint"):
        resolve_s3_settings(env)
    settings = resolve_s3_settings(env, allow_insecure_endpoint=True)
    assert settings.endpoint_url == "http://minio.internal:9000"


# -- parts, metadata, stale uploads ------------------------------------------------------


def test_part_size() -> None:
    assert part_size_for(8 * 2**20, None) == 8 * 2**20
    assert part_size_for(8 * 2**20, 2**30) == 8 * 2**20
    big = 200 * 2**30  # 200 GiB does not fit in 10,000 parts of 8 MiB
    assert part_size_for(8 * 2**20, big) * 10_000 >= big
    with pytest.raises(ValidationError, match="5 MiB"):
        part_size_for(MIN_PART_SIZE - 1, None)


def test_metadata_round_trip() -> None:
    meta = object_metadata(SHA, 1234)
    assert meta == {"sha256": SHA, "bytes": "1234"}
    assert stored_sha256(meta, 1234) == SHA
    assert stored_sha256({"sha256": SHA.upper(), "bytes": "1234"}, 1234) == SHA
    assert stored_sha256(meta, 1235) is None  # overwritten by something else
    assert stored_sha256({}, 0) is None
    assert stored_sha256({"sha256": "nothex", "bytes": "0"}, 0) is None


def test_stale_uploads_spare_recent_ones() -> None:
    now = datetime(2025, 1, 2, 12, tzinfo=UTC)
    old = IncompleteUpload("p/a", "u1", now - timedelta(hours=25))
    edge = IncompleteUpload("p/b", "u2", now - timedelta(hours=24))
    fresh = IncompleteUpload("p/c", "u3", now - timedelta(minutes=5))
    assert stale_uploads([old, edge, fresh], now=now, older_than=timedelta(hours=24)) == [
        old,
        edge,
    ]
    assert stale_uploads([fresh], now=now, older_than=timedelta(0)) == [fresh]
