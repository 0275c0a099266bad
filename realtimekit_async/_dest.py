"""The pure decisions behind exporting into a directory or an object store.

No sockets, no event loop: what a ``dest`` string means (a local path or an
``s3://``, ``gs://``, ``az://`` URL), which key a file gets under the prefix,
where the manifest segments live, which endpoint and credentials an S3 client
uses (from arguments, then the standard ``AWS_*`` variables), how a multipart
upload is cut into parts, what a stored object's metadata says, which
incomplete uploads are stale, and what a store's error answer means. The I/O
adapter in ``_objstore`` executes these decisions; the tests call them directly.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final

import attrs
from yarl import URL

from ._exceptions import ValidationError
from ._export_plan import _is_loopback, display_url

__all__ = [
    "MANIFEST_DIR",
    "MAX_KEY_BYTES",
    "MAX_PARTS",
    "MAX_SINGLE_COPY",
    "MIN_PART_SIZE",
    "Destination",
    "IncompleteUpload",
    "LocalDestination",
    "ObjectDestination",
    "S3Settings",
    "Scheme",
    "StoredObject",
    "b64_sha256",
    "manifest_key",
    "manifest_prefix",
    "object_key",
    "object_metadata",
    "parse_destination",
    "part_size_for",
    "resolve_s3_settings",
    "same_checksum",
    "stale_uploads",
    "stored_sha256",
]

#: The folder under the prefix holding one manifest segment per run.
MANIFEST_DIR: Final = "manifest"
#: S3's limit on a key's length, in UTF-8 bytes.
MAX_KEY_BYTES: Final = 1024
#: S3's smallest part (all but the last) and most parts of one multipart upload.
MIN_PART_SIZE: Final = 5 * 1024 * 1024
MAX_PARTS: Final = 10_000
#: The largest object one CopyObject call can copy (S3's 5 GiB limit).
MAX_SINGLE_COPY: Final = 5 * 1024**3

# Metadata names (sent as x-amz-meta-*); S3 lower-cases them anyway.
_META_SHA256: Final = "sha256"
_META_BYTES: Final = "bytes"

_HEX_SHA256: Final = re.compile(r"[0-9a-f]{64}")
# DNS-style bucket names (S3, R2, MinIO, GCS); Azure containers are a subset.
_BUCKET: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_RUN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Characters that XML 1.0 (every S3 listing answer) cannot carry, and DEL.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class Scheme(StrEnum):
    """Which kind of store a destination names."""

    S3 = "s3"
    GCS = "gs"
    AZURE = "az"


@attrs.frozen
class LocalDestination:
    """A directory on the local file system."""

    path: Path


@attrs.frozen
class ObjectDestination:
    """A bucket (container) and a key prefix in an object store.

    ``prefix`` has no leading or trailing ``/`` and may be empty (the bucket's root).
    """

    scheme: Scheme
    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")


Destination = LocalDestination | ObjectDestination


def _check_segments(field: str, path: str, what: str) -> None:
    """Refuse a ``/``-separated path that could leave the prefix or mean two things."""
    if _CONTROL.search(path):
        raise ValidationError(field, f"{what} contains a control character")
    if "\\" in path:
        raise ValidationError(field, f"{what} contains a backslash")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise ValidationError(
                field, f"{what} {path!r} has an empty, '.' or '..' segment (or a doubled '/')"
            )


def parse_destination(dest: str | os.PathLike[str]) -> Destination:
    """What ``dest`` names: a local directory, or a bucket and prefix in an object store.

    ``s3://bucket/prefix`` (AWS S3 and S3-compatible stores), ``gs://`` and
    ``az://`` URLs are parsed; anything without a ``scheme://`` (or a
    ``file://`` URL) is a local path. Raises :class:`ValidationError` for an
    unknown scheme, a missing or invalid bucket, or a prefix with empty, ``.``
    or ``..`` segments, control characters or backslashes.
    """
    if not isinstance(dest, str):
        return LocalDestination(Path(dest))
    scheme, sep, rest = dest.partition("://")
    if not sep:
        if not dest:
            raise ValidationError("dest", "must not be empty")
        return LocalDestination(Path(dest))
    scheme = scheme.lower()
    if scheme == "file":
        return LocalDestination(Path(URL(dest).path))
    try:
        kind = Scheme(scheme)
    except ValueError:
        known = ", ".join(f"{s}://" for s in Scheme)
        raise ValidationError(
            "dest", f"unknown scheme {scheme!r}: use a local path, file://, or {known}"
        ) from None
    if "?" in rest or "#" in rest:
        raise ValidationError("dest", "an object-store URL takes no query or fragment")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValidationError(
            "dest",
            f"{bucket!r} is not a valid bucket name (3-63 lower-case letters, digits, '.', '-')",
        )
    prefix = prefix.strip("/")
    if prefix:
        _check_segments("dest", prefix, "prefix")
    return ObjectDestination(kind, bucket, prefix)


def object_key(dest: ObjectDestination, name: str) -> str:
    """The key of the file ``name`` (relative to the export's root) under ``dest``.

    Mirrors the local layout: ``{prefix}/{name}``. Raises
    :class:`ValidationError` when ``name`` is absolute or has empty, ``.`` or
    ``..`` segments, control characters or backslashes, when it lies in the
    manifest folder, or when the key would exceed S3's 1,024-byte limit; so
    every accepted key lies strictly under the prefix.
    """
    _check_segments("name", name, "file name")
    if name.split("/", 1)[0] == MANIFEST_DIR:
        raise ValidationError("name", f"{MANIFEST_DIR!r} is reserved for the manifest segments")
    key = f"{dest.prefix}/{name}" if dest.prefix else name
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValidationError("name", f"the key would exceed {MAX_KEY_BYTES} bytes")
    return key


def manifest_prefix(dest: ObjectDestination) -> str:
    """The key prefix (ending in ``/``) under which every manifest segment lies."""
    return f"{dest.prefix}/{MANIFEST_DIR}/" if dest.prefix else f"{MANIFEST_DIR}/"


def manifest_key(dest: ObjectDestination, segment: str) -> str:
    """The key of the manifest segment ``segment`` (a run id): ``{prefix}/manifest/{segment}.jsonl``.

    Raises :class:`ValidationError` unless ``segment`` is 1-128 of ``[A-Za-z0-9._-]``
    starting with a letter or digit.
    """
    if not _RUN_ID.fullmatch(segment):
        raise ValidationError(
            "segment", "must be 1-128 of A-Z, a-z, 0-9, '.', '_', '-', starting alphanumeric"
        )
    return f"{manifest_prefix(dest)}{segment}.jsonl"


# -- endpoint and credentials -------------------------------------------------------


@attrs.frozen
class S3Settings:
    """How to reach an S3-compatible store.

    ``None`` fields are left to botocore's own chain (shared config and
    credentials files, SSO, instance metadata). Secrets never appear in ``repr``.
    """

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = attrs.field(default=None, repr=False)
    session_token: str | None = attrs.field(default=None, repr=False)


def _endpoint_problem(endpoint: str, allow_insecure: bool) -> str | None:
    try:
        url = URL(endpoint)
    except (TypeError, ValueError):
        return "is not a valid URL"
    if url.scheme not in ("http", "https") or not url.host:
        return "must be an absolute http(s) URL"
    if url.user or url.password or url.query_string or url.fragment:
        return "must not carry credentials, a query or a fragment"
    if url.scheme == "http" and not (allow_insecure or _is_loopback(url.host)):
        return (
            "is plain http on a non-loopback host (requests and credentials would travel "
            "unencrypted); use https, or pass allow_insecure_endpoint=True"
        )
    return None


def resolve_s3_settings(
    env: Mapping[str, str],
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    allow_insecure_endpoint: bool = False,
) -> S3Settings:
    """The S3 settings from the arguments, else the standard variables in ``env``.

    Reads ``AWS_ENDPOINT_URL_S3`` then ``AWS_ENDPOINT_URL``, ``AWS_REGION`` then
    ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
    ``AWS_SESSION_TOKEN``. Credentials given in code are used as a set: the
    environment never completes them. Raises :class:`ValidationError` for a key
    id without its secret (or the reverse) and for an endpoint that is not an
    absolute http(s) URL or is plain http on a non-loopback host (unless
    ``allow_insecure_endpoint``).
    """

    def pick(*names: str) -> str | None:
        for name in names:
            if value := env.get(name, "").strip():
                return value
        return None

    endpoint = endpoint_url or pick("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    if endpoint is not None and (problem := _endpoint_problem(endpoint, allow_insecure_endpoint)):
        raise ValidationError("endpoint_url", f"{display_url(endpoint)} {problem}")
    if access_key_id is not None or secret_access_key is not None:
        key_id, secret, token = access_key_id, secret_access_key, session_token
    else:
        key_id, secret = pick("AWS_ACCESS_KEY_ID"), pick("AWS_SECRET_ACCESS_KEY")
        token = session_token or pick("AWS_SESSION_TOKEN")
    if (key_id is None) != (secret is None):
        raise ValidationError(
            "access_key_id", "an access key id and a secret access key go together"
        )
    return S3Settings(
        endpoint_url=endpoint,
        region=region or pick("AWS_REGION", "AWS_DEFAULT_REGION"),
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=token if key_id is not None else None,
    )


# -- uploads -----------------------------------------------------------------------------


def part_size_for(part_size: int, expected_size: int | None) -> int:
    """The part size for an upload: ``part_size``, grown so ``expected_size`` fits in 10,000 parts.

    Raises :class:`ValidationError` when ``part_size`` is below S3's 5 MiB minimum.
    """
    if part_size < MIN_PART_SIZE:
        raise ValidationError("part_size", f"must be at least {MIN_PART_SIZE} bytes (5 MiB)")
    if expected_size is not None and expected_size > part_size * MAX_PARTS:
        return math.ceil(expected_size / MAX_PARTS)
    return part_size


def b64_sha256(digest: bytes) -> str:
    """A SHA-256 digest as the base64 text of S3's ``x-amz-checksum-sha256``."""
    return base64.b64encode(digest).decode("ascii")


def same_checksum(recorded: str | None, found: str | None) -> bool:
    """Whether two S3 SHA-256 checksums of an object agree; a multipart object's ``-N``
    part-count suffix is ignored (some stores leave it off)."""
    if recorded is None or found is None:
        return False
    return recorded.partition("-")[0] == found.partition("-")[0]


def object_metadata(sha256_hex: str, size: int) -> dict[str, str]:
    """The user metadata stored with an exported object: its SHA-256 and its size."""
    return {_META_SHA256: sha256_hex, _META_BYTES: str(size)}


def stored_sha256(metadata: Mapping[str, str], size: int) -> str | None:
    """The SHA-256 an object's metadata records, or ``None`` if absent, malformed, or
    recorded for a different size (an object overwritten by someone else)."""
    sha = metadata.get(_META_SHA256, "").lower()
    if not _HEX_SHA256.fullmatch(sha) or metadata.get(_META_BYTES) != str(size):
        return None
    return sha


@attrs.frozen
class StoredObject:
    """An object in the store, as written or as found by ``head``.

    ``sha256`` is the hex SHA-256 its metadata records (``None`` when it has
    none, e.g. written by another tool); ``checksum_sha256`` is the store's own
    ``x-amz-checksum-sha256`` (base64; for a multipart object not sealed by a
    copy it is S3's checksum of part checksums, suffixed ``-N``).
    """

    key: str
    size: int
    sha256: str | None
    checksum_sha256: str | None
    etag: str | None


@attrs.frozen
class IncompleteUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


def stale_uploads(
    uploads: Iterable[IncompleteUpload], *, now: datetime, older_than: timedelta
) -> list[IncompleteUpload]:
    """The uploads started at least ``older_than`` before ``now``: those no live run still
    owns, given that no upload runs longer than ``older_than``."""
    return [u for u in uploads if now - u.initiated >= older_than]
