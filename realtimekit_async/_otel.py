"""Tracing of API attempts and downloads: a no-op by default, OpenTelemetry on request.

``RealtimeKit(tracing=True)`` (or a ``TracerProvider``) makes one CLIENT span
per HTTP attempt, named ``{method} {route}`` with the route template (ids left
out), carrying the HTTP semantic-convention attributes; a retry is an event on
the failed attempt's span. ``url.full`` never carries the query (a download
URL's query is a credential), and no header is recorded.

``opentelemetry-api`` is imported only when tracing is switched on, so the core
install neither needs nor imports it (extra ``otel``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from yarl import URL

from ._exceptions import ValidationError
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["NO_TRACING", "AttemptSpan", "OpenTelemetryTracing", "Tracing", "make_tracing"]


class AttemptSpan:
    """What the transport reports about one attempt; this base class records nothing."""

    def answered(self, status: int) -> None:
        """The attempt got an HTTP answer with ``status``."""

    def failed(self, error_type: str) -> None:
        """The attempt got no usable answer; ``error_type`` is low-cardinality (a class name)."""

    def retrying(self, delay: float) -> None:
        """The call will retry after ``delay`` seconds."""


_NO_SPAN = AttemptSpan()


class Tracing:
    """Makes an :class:`AttemptSpan` per HTTP attempt; this base class makes no-op ones."""

    @contextlib.contextmanager
    def attempt(
        self, *, method: str, url: URL, route: str | None, attempt: int = 0
    ) -> Iterator[AttemptSpan]:
        """Span one HTTP attempt of ``method`` on ``url`` (its query is never recorded).

        ``route`` is the path template for the span name (``None`` for a
        download: the span is then named after the method alone).
        """
        yield _NO_SPAN


NO_TRACING = Tracing()


class _OtelAttempt(AttemptSpan):
    def __init__(self, span: Span) -> None:
        self._span = span
        self.errored = False

    def answered(self, status: int) -> None:
        from opentelemetry.trace import StatusCode

        self._span.set_attribute("http.response.status_code", status)
        if status >= 400:
            self.errored = True
            self._span.set_attribute("error.type", str(status))
            self._span.set_status(StatusCode.ERROR)

    def failed(self, error_type: str) -> None:
        from opentelemetry.trace import StatusCode

        self.errored = True
        self._span.set_attribute("error.type", error_type)
        self._span.set_status(StatusCode.ERROR)

    def retrying(self, delay: float) -> None:
        self._span.add_event("retry", {"retry.delay": delay})


class OpenTelemetryTracing(Tracing):
    """Spans through ``opentelemetry-api``, on ``tracer_provider`` or the global one."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        from opentelemetry import trace

        self._tracer = trace.get_tracer(
            "realtimekit_async", __version__, tracer_provider=tracer_provider
        )

    @contextlib.contextmanager
    def attempt(
        self, *, method: str, url: URL, route: str | None, attempt: int = 0
    ) -> Iterator[AttemptSpan]:
        from opentelemetry.trace import SpanKind

        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.full": str(url.with_query(None).with_fragment(None).with_user(None)),
            "server.address": url.host or "",
        }
        if url.explicit_port is not None or url.port is not None:
            attributes["server.port"] = url.port
        if route is not None:
            attributes["http.route"] = route
        if attempt:
            attributes["http.request.resend_count"] = attempt
        name = f"{method} {route}" if route is not None else method
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,  # messages are the SDK's own; the type is enough
            set_status_on_exception=False,
        ) as span:
            recorder = _OtelAttempt(span)
            try:
                yield recorder
            except BaseException as exc:
                if not recorder.errored:  # a deadline's cancellation, a body too large
                    recorder.failed(type(exc).__qualname__)
                raise


def make_tracing(tracing: object) -> Tracing:
    """The tracer for the client's ``tracing=`` argument: ``False``, ``True`` or a provider."""
    if tracing is False or tracing is None:
        return NO_TRACING
    if tracing is not True and not callable(getattr(tracing, "get_tracer", None)):
        raise ValidationError(
            "tracing", f"must be True, False or an OpenTelemetry TracerProvider, got {tracing!r}"
        )
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        raise ValidationError(
            "tracing", "needs opentelemetry-api: pip install 'realtimekit_async[otel]'"
        ) from None
    return OpenTelemetryTracing(None if tracing is True else tracing)  # type: ignore[arg-type]
