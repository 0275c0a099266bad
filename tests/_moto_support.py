"""Shared moto fixtures: one S3 server on 127.0.0.1 per session, a checking client, a
fresh bucket per test, and fault proxies. Loaded as a plugin by ``conftest``.

The store library is imported only when a fixture needs it, so the other tests
stay quick to collect.
"""

from __future__ import annotations

import asyncio
import io
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from realtimekit_async._dest import MIN_PART_SIZE, S3Settings

if TYPE_CHECKING:
    from aiobotocore.session import AioSession
    from types_aiobotocore_s3 import S3Client

    from realtimekit_async._objstore import ObjectStore

MiB = 1024 * 1024
CREDENTIALS = {"region": "us-east-1", "access_key_id": "AKIATEST", "secret_access_key": "s3cr3t-9f"}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto S3 server for the whole session, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def settings_for(url: str) -> S3Settings:
    return S3Settings(endpoint_url=url, **CREDENTIALS)


def store_on(url: str, bucket: str, prefix: str = "p", **options: Any) -> ObjectStore:
    """An adapter on ``s3://{bucket}/{prefix}`` at ``url``, with the smallest parts S3 allows."""
    from realtimekit_async._objstore import ObjectStore

    return ObjectStore(
        f"s3://{bucket}/{prefix}", settings_for(url), part_size=MIN_PART_SIZE, **options
    )


@pytest.fixture(scope="session")
def botocore_session() -> AioSession:
    # One session for all checks: a session loads botocore's S3 model once.
    from aiobotocore.session import get_session

    return get_session()


@pytest.fixture
async def raw(moto_url: str, botocore_session: AioSession) -> AsyncIterator[S3Client]:
    """A plain aiobotocore client on moto, to check what the store really holds."""
    async with botocore_session.create_client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        yield client


@pytest.fixture
async def bucket(raw: S3Client) -> str:
    """A fresh bucket per test, so tests never see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    await raw.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def store(moto_url: str, bucket: str) -> AsyncIterator[ObjectStore]:
    async with store_on(moto_url, bucket, "exports") as s:
        yield s


async def stream(data: bytes, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


async def read(raw: S3Client, bucket: str, key: str) -> bytes:
    answer = await raw.get_object(Bucket=bucket, Key=key)
    async with answer["Body"] as body:
        return await body.read()


async def keys(raw: S3Client, bucket: str) -> list[str]:
    answer = await raw.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in answer.get("Contents", []))


async def uploads(raw: S3Client, bucket: str) -> list[str]:
    answer = await raw.list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in answer.get("Uploads", [])]


async def kill_mid_upload(script: str, raw: S3Client, bucket: str, *, within: float) -> None:
    """Run ``script`` in a new Python process and kill it once the bucket holds a part.

    That is, mid-way through a multipart upload; fails if the upload has not
    begun within ``within`` seconds or the process ends by itself first.
    """
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    try:
        deadline = time.monotonic() + within
        while not await _a_part_is_stored(raw, bucket):
            assert time.monotonic() < deadline, "the upload never started"
            assert proc.returncode is None, "the uploading process exited early"
            await asyncio.sleep(0.02)
    finally:
        proc.kill()
        await proc.wait()


async def _a_part_is_stored(raw: S3Client, bucket: str) -> bool:
    found = await raw.list_multipart_uploads(Bucket=bucket)
    for upload in found.get("Uploads", [])[:1]:
        listed = await raw.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        return bool(listed.get("Parts"))
    return False


Rule = Callable[[str, dict[str, str]], int | None]


class FaultProxy:
    """An aiohttp proxy in front of moto that answers some requests with an error instead.

    ``rule(method, query)`` returns the status to fail a request with, or None to
    forward it; ``corrupt(payload)`` may alter every forwarded answer's body.
    Counts forwarded and failed requests and the most part uploads in flight at once.
    """

    def __init__(
        self, upstream: str, rule: Rule, corrupt: Callable[[bytes], bytes] = bytes
    ) -> None:
        self.upstream = upstream
        self.url = ""  # set once listening
        self.rule = rule
        self.corrupt = corrupt
        self.failed = 0
        self.forwarded = 0
        self.parts_in_flight = 0
        self.max_parts_in_flight = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        query = dict(request.query)
        status = self.rule(request.method, query)
        if status is not None:
            self.failed += 1
            error = f"<Error><Code>InternalError</Code><Message>injected {status}</Message></Error>"
            return web.Response(status=status, text=error, content_type="application/xml")
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding")
        }
        is_part = "partNumber" in query
        self.parts_in_flight += is_part
        self.max_parts_in_flight = max(self.max_parts_in_flight, self.parts_in_flight)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.request(
                    request.method,
                    self.upstream + request.path_qs,
                    headers=headers,
                    data=io.BytesIO(body),
                ) as answer,
            ):
                payload = self.corrupt(await answer.read())
                drop = ("content-length", "transfer-encoding", "content-encoding", "connection")
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in drop}
                self.forwarded += 1
                return web.Response(status=answer.status, body=payload, headers=kept)
        finally:
            self.parts_in_flight -= is_part


MakeProxy = Callable[..., Awaitable[FaultProxy]]


@pytest.fixture
async def proxied(moto_url: str) -> AsyncIterator[MakeProxy]:
    """Start fault proxies on 127.0.0.1 (``make(rule)``); all stopped after the test."""
    runners: list[web.AppRunner] = []

    async def make(rule: Rule, corrupt: Callable[[bytes], bytes] = bytes) -> FaultProxy:
        proxy = FaultProxy(moto_url, rule, corrupt)
        app = web.Application(client_max_size=64 * MiB)
        app.router.add_route("*", "/{tail:.*}", proxy.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        proxy.url = f"http://127.0.0.1:{port}"
        return proxy

    yield make
    for runner in runners:
        await runner.cleanup()
