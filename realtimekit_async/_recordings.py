"""``client.recordings``: the six Recordings endpoints."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar, Unpack

import attrs

from ._call import CallSettings, RequestOptions, resolve_call
from ._converter import converter
from ._exceptions import APIResponseValidationError, BadRequestError, ConflictError
from ._lifecycle import action_applied
from ._models import (
    AudioConfig,
    InteractiveConfig,
    ListRecordingsParams,
    RealtimeKitBucketConfig,
    Recording,
    RecordingAction,
    RecordingActionParams,
    RecordingPage,
    RecordingStatus,
    RtmpOutConfig,
    SortBy,
    SortOrder,
    StartRecordingParams,
    StartTrackRecordingParams,
    StorageConfig,
    TrackLayer,
    VideoConfig,
)
from ._pagination import RecordingPaginator
from ._polling import wait_for_recording
from ._response import (
    APIResponse,
    capturing,
    raw_page_wrapper,
    raw_response_wrapper,
    record_response,
)
from ._sansio import MAX_WALK_PAGES, list_query, redact, redact_body
from ._validation import check_id, check_int

if TYPE_CHECKING:
    from ._client import RealtimeKit, Sent

__all__ = ["Recordings", "RecordingsWithRawResponse"]

_T = TypeVar("_T")

DEFAULT_PER_PAGE: Final = 100
DEFAULT_PREFETCH: Final = 8

# Route templates (after the app's prefix): span names and hooks show these, not ids.
_LIST: Final = "/recordings"
_ONE: Final = "/recordings/{recording_id}"
_ACTIVE: Final = "/recordings/active-recording/{meeting_id}"
_TRACK: Final = "/recordings/track"


def _decode(
    doc: Mapping[str, Any],
    cls: type[_T],
    *,
    method: str,
    path: str,
    status: int,
    body: bytes,
    secrets: Iterable[str] = (),
) -> _T:
    """Structure an envelope's payload; a shape mismatch is a response error, not a crash.

    The error carries the answer's real ``status`` and (redacted) ``body``.
    """
    try:
        return converter.structure(doc["data"] if cls is not RecordingPage else doc, cls)
    except Exception as exc:  # cattrs raises many types; all mean "not the documented shape"
        problem = redact(repr(exc), secrets)
    # Raised outside the handler, so no chained cause or context carries a presigned URL.
    raise APIResponseValidationError(
        f"{method} {path}: unexpected response shape for {cls.__name__}: {problem}",
        status=status,
        body=redact_body(body, secrets),
        method=method,
        path=path,
    )


class Recordings:
    """The Recordings API. Every method takes ``app_id=`` to override the client default,
    and the per-call options of :class:`RequestOptions` (``timeout``, ``max_retries``,
    ``extra_headers``, ``extra_query``, ``extra_body``).

    ``with_raw_response`` has the same methods, returning :class:`APIResponse`.
    """

    def __init__(self, client: RealtimeKit) -> None:
        self._client = client

    @functools.cached_property
    def with_raw_response(self) -> RecordingsWithRawResponse:
        """The same methods, each returning the call's :class:`APIResponse`."""
        return RecordingsWithRawResponse(self)

    async def _send(
        self,
        method: str,
        segments: tuple[str, ...],
        *,
        route: str,
        app_id: str | None,
        options: RequestOptions | CallSettings,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> Sent:
        client = self._client
        call = (
            options if isinstance(options, CallSettings) else resolve_call(client.options, options)
        )
        payload = None if body is None else converter.unstructure(body)
        return await client._request(
            method,
            segments,
            route=route,
            call=call,
            app_id=app_id,
            query=query or (),
            body=payload,
            idempotent=idempotent,
        )

    def _parse(self, sent: Sent, cls: type[_T], *, optional: bool = False) -> _T:
        """Decode ``sent`` as ``cls`` (``None`` for a missing ``data`` when ``optional``),
        and hand the raw response to a ``with_raw_response`` twin."""
        answer = sent.answer
        parsed: Any = None
        if not (optional and sent.doc.get("data") is None):
            parsed = _decode(
                sent.doc,
                cls,
                method=sent.method,
                path=sent.path,
                status=answer.status,
                body=answer.body,
                secrets=(self._client.options.api_token,),
            )
        if capturing():
            record_response(
                APIResponse(
                    method=sent.method,
                    path=sent.path,
                    status_code=answer.status,
                    headers=answer.headers,
                    content=answer.body,
                    retries_taken=sent.retries_taken,
                    elapsed=sent.elapsed,
                    parsed=parsed,
                )
            )
        return parsed  # type: ignore[no-any-return]

    async def _call(
        self,
        method: str,
        segments: tuple[str, ...],
        cls: type[_T],
        *,
        route: str,
        app_id: str | None,
        options: RequestOptions | CallSettings,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> _T:
        sent = await self._send(
            method,
            segments,
            route=route,
            app_id=app_id,
            options=options,
            query=query,
            body=body,
            idempotent=idempotent,
        )
        return self._parse(sent, cls)

    def list(
        self,
        *,
        meeting_id: str | None = None,
        status: RecordingStatus | str | Iterable[RecordingStatus | str] | None = None,
        search: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        expired: bool | None = None,
        sort_by: SortBy | str | None = None,
        sort_order: SortOrder | str | None = None,
        page_no: int = 1,
        per_page: int = DEFAULT_PER_PAGE,
        prefetch: int = DEFAULT_PREFETCH,
        max_pages: int = MAX_WALK_PAGES,
        app_id: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> RecordingPaginator:
        """List recordings, newest filters first; ``await`` for one page, ``async for`` for all.

        ``status`` is one status or several (sent as repeated ``status=`` keys).
        ``prefetch`` bounds how many pages are fetched ahead concurrently;
        ``max_pages`` caps how many pages one walk reads (it raises
        :class:`PaginationError` past its bound). Raises :class:`ValidationError`
        at once for bad arguments.
        """
        params = ListRecordingsParams(
            meeting_id=meeting_id,
            status=status,
            search=search,
            start_time=start_time,
            end_time=end_time,
            expired=expired,
            sort_by=sort_by,
            sort_order=sort_order,
            page_no=page_no,
            per_page=per_page,
        )
        check_int("prefetch", prefetch, 1)
        check_int("max_pages", max_pages, 1)
        self._client._url(app_id, ())  # fail now, not on first await, if app_id is missing
        call = resolve_call(self._client.options, options)

        async def fetch(number: int) -> RecordingPage:
            query = list_query(attrs.evolve(params, page_no=number))
            return await self._call(
                "GET", (), RecordingPage, route=_LIST, app_id=app_id, options=call, query=query
            )

        return RecordingPaginator(
            fetch, page_no=page_no, per_page=per_page, prefetch=prefetch, max_pages=max_pages
        )

    async def start(
        self,
        meeting_id: str,
        *,
        allow_multiple_recordings: bool | None = None,
        audio_config: AudioConfig | None = None,
        file_name_prefix: str | None = None,
        interactive_config: InteractiveConfig | None = None,
        max_seconds: int | None = None,
        realtimekit_bucket_config: RealtimeKitBucketConfig | None = None,
        rtmp_out_config: RtmpOutConfig | None = None,
        storage_config: StorageConfig | None = None,
        url: str | None = None,
        video_config: VideoConfig | None = None,
        app_id: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> Recording:
        """Start recording a meeting and return the new (INVOKED) recording.

        Not idempotent: retried only when the request provably was not processed
        (the connection was never made, or HTTP 429).
        Raises :class:`ConflictError` when the meeting already has an active recording.
        """
        body = StartRecordingParams(
            meeting_id=meeting_id,
            allow_multiple_recordings=allow_multiple_recordings,
            audio_config=audio_config,
            file_name_prefix=file_name_prefix,
            interactive_config=interactive_config,
            max_seconds=max_seconds,
            realtimekit_bucket_config=realtimekit_bucket_config,
            rtmp_out_config=rtmp_out_config,
            storage_config=storage_config,
            url=url,
            video_config=video_config,
        )
        return await self._call(
            "POST",
            (),
            Recording,
            route=_LIST,
            app_id=app_id,
            options=options,
            body=body,
            idempotent=False,
        )

    async def get_active(
        self, meeting_id: str, *, app_id: str | None = None, **options: Unpack[RequestOptions]
    ) -> Recording:
        """The meeting's active recording; raises :class:`NotFoundError` when there is none."""
        segments = ("active-recording", check_id("meeting_id", meeting_id))
        return await self._call(
            "GET", segments, Recording, route=_ACTIVE, app_id=app_id, options=options
        )

    async def get(
        self, recording_id: str, *, app_id: str | None = None, **options: Unpack[RequestOptions]
    ) -> Recording:
        """One recording by id; raises :class:`NotFoundError` when it does not exist."""
        segments = (check_id("recording_id", recording_id),)
        return await self._call(
            "GET", segments, Recording, route=_ONE, app_id=app_id, options=options
        )

    async def pause_resume_stop(
        self,
        recording_id: str,
        action: RecordingAction | str,
        *,
        app_id: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> Recording:
        """Pause, resume or stop a recording; returns it in its new state.

        The call is retried on transient failures. When a retry is refused (400 or
        409, "invalid transition") after an earlier attempt may have gone through,
        the recording is fetched: if it already shows the action's effect, that is
        the answer; otherwise the error is raised.
        """
        segments = (check_id("recording_id", recording_id),)
        body = RecordingActionParams(action=action)
        call = resolve_call(self._client.options, options)
        try:
            return await self._call(
                "PUT", segments, Recording, route=_ONE, app_id=app_id, options=call, body=body
            )
        except (BadRequestError, ConflictError) as exc:
            if not exc.possibly_applied:
                raise
            lookup = attrs.evolve(call, extra_body=None)  # a GET sends no body
            current = await self._call(
                "GET", segments, Recording, route=_ONE, app_id=app_id, options=lookup
            )
            if action_applied(body.action, current.status):
                return current
            raise

    async def stop(
        self, recording_id: str, *, app_id: str | None = None, **options: Unpack[RequestOptions]
    ) -> Recording:
        """Stop a recording (it moves to UPLOADING, then UPLOADED)."""
        return await self.pause_resume_stop(
            recording_id, RecordingAction.STOP, app_id=app_id, **options
        )

    async def pause(
        self, recording_id: str, *, app_id: str | None = None, **options: Unpack[RequestOptions]
    ) -> Recording:
        """Pause a recording (PAUSED until resumed)."""
        return await self.pause_resume_stop(
            recording_id, RecordingAction.PAUSE, app_id=app_id, **options
        )

    async def resume(
        self, recording_id: str, *, app_id: str | None = None, **options: Unpack[RequestOptions]
    ) -> Recording:
        """Resume a paused recording."""
        return await self.pause_resume_stop(
            recording_id, RecordingAction.RESUME, app_id=app_id, **options
        )

    async def start_track(
        self,
        meeting_id: str,
        *,
        layers: Mapping[str, TrackLayer] | None = None,
        user_ids: Iterable[str] | None = None,
        max_seconds: int | None = None,
        app_id: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> Recording | None:
        """Start a track recording; returns the recording when the API sends one back.

        The arguments pick the body: the current API's (``layers`` of
        ``TrackLayer(file_name_prefix=..., media_kind=...)``, ``user_ids``) or the
        legacy one (``layers`` of ``TrackLayer(outputs=[...])``, ``max_seconds``);
        mixing them raises :class:`ValidationError` before anything is sent. The
        answer may be ``data.recording`` (current), a recording in ``data``
        (legacy) or carry none (``None``). Not idempotent, retried like :meth:`start`.
        """
        body = StartTrackRecordingParams(
            meeting_id=meeting_id,
            layers=layers,
            user_ids=user_ids,  # the converter makes it a tuple
            max_seconds=max_seconds,
        )
        sent = await self._send(
            "POST",
            ("track",),
            route=_TRACK,
            app_id=app_id,
            options=options,
            body=body,
            idempotent=False,
        )
        data = sent.doc.get("data")
        if isinstance(data, dict) and "recording" in data and "id" not in data:
            # The current API's {"data": {"recording": ...}}; the legacy one is flat.
            sent = attrs.evolve(sent, doc={**sent.doc, "data": data["recording"]})
        return self._parse(sent, Recording, optional=True)

    async def wait_for(
        self,
        recording_id: str,
        status: RecordingStatus | str | Iterable[RecordingStatus | str] = RecordingStatus.UPLOADED,
        *,
        timeout: float | None = 600.0,  # noqa: ASYNC109  # a deadline for the whole wait, not one call
        poll_interval: float = 2.0,
        max_poll_interval: float = 30.0,
        app_id: str | None = None,
    ) -> Recording:
        """Poll :meth:`get` until the recording reaches ``status`` (one or several); return it.

        Pauses grow from ``poll_interval`` to ``max_poll_interval``; every poll
        shares the client's rate limiter, and transient API errors just mean
        "poll again". ``timeout=None`` waits indefinitely. Raises
        :class:`ValidationError` before any request for bad arguments,
        :class:`RecordingFailedError` when the recording ends ERRORED unwanted (or
        moves past every wanted status), and the builtin :class:`TimeoutError`.
        """
        check_id("recording_id", recording_id)
        return await wait_for_recording(
            lambda: self.get(recording_id, app_id=app_id),
            recording_id,
            status,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )


class RecordingsWithRawResponse:
    """``client.recordings.with_raw_response``: each method returns an :class:`APIResponse`.

    ``list`` answers with one page (``page_no``), not a paginator.
    """

    def __init__(self, recordings: Recordings) -> None:
        self.list = raw_page_wrapper(recordings.list)
        self.start = raw_response_wrapper(recordings.start)
        self.get_active = raw_response_wrapper(recordings.get_active)
        self.get = raw_response_wrapper(recordings.get)
        self.pause_resume_stop = raw_response_wrapper(recordings.pause_resume_stop)
        self.stop = raw_response_wrapper(recordings.stop)
        self.pause = raw_response_wrapper(recordings.pause)
        self.resume = raw_response_wrapper(recordings.resume)
        self.start_track = raw_response_wrapper(recordings.start_track)
