"""The public surface: what __init__ exports is exactly what is public, sorted."""

from __future__ import annotations

import inspect
import pickle
import traceback
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import attrs
import pytest

import realtimekit_async
import realtimekit_async.export
import realtimekit_async.testing
import realtimekit_async.webhooks

from ._support import recording_json


def test_all_is_sorted() -> None:
    assert realtimekit_async.__all__ == sorted(realtimekit_async.__all__)


def test_all_matches_public_names() -> None:
    public = {
        name
        for name, value in vars(realtimekit_async).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("realtimekit_async")
    }
    # Submodules (webhooks, emulator, export, ...) are reached by attribute, not exported.
    public -= {
        name for name, value in vars(realtimekit_async).items() if type(value).__name__ == "module"
    }
    assert public | {"__version__", "DEFAULT_RATE_LIMITS", "GLOBAL_RATE_LIMITS"} == set(
        realtimekit_async.__all__
    )


def test_every_exported_name_exists() -> None:
    for name in realtimekit_async.__all__:
        assert hasattr(realtimekit_async, name), name


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("realtimekit_async").joinpath("py.typed").is_file()


def _public_objects() -> list[tuple[str, Any]]:
    return [
        (name, obj)
        for name in realtimekit_async.__all__
        if isinstance(obj := getattr(realtimekit_async, name), type) or inspect.isfunction(obj)
    ]


def _functions_of(cls: type) -> Iterator[tuple[str, Any]]:
    """Every function defined on ``cls`` or a base of the package's: methods, accessors."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("realtimekit_async"):
            continue
        for name, value in vars(klass).items():
            if isinstance(value, staticmethod | classmethod):
                value = value.__func__
            if isinstance(value, property):
                yield from ((name, f) for f in (value.fget, value.fset) if f is not None)
            elif inspect.isfunction(value):
                yield name, value


def test_public_names_report_the_public_module() -> None:
    """As httpx does: tracebacks, reprs and pickles say ``realtimekit_async.X``."""
    objects = _public_objects()
    assert len(objects) > 60
    for name, obj in objects:
        assert obj.__module__ == "realtimekit_async", name
        assert getattr(realtimekit_async, obj.__qualname__) is obj, name
    assert repr(realtimekit_async.Recording).startswith("<class 'realtimekit_async.Recording'")
    try:
        raise realtimekit_async.NotFoundError("gone", status=404)
    except realtimekit_async.NotFoundError:
        assert (
            traceback.format_exc().splitlines()[-1].startswith("realtimekit_async.NotFoundError: ")
        )


@pytest.mark.parametrize(
    "module", [realtimekit_async.webhooks, realtimekit_async.testing, realtimekit_async.export]
)
def test_public_submodules_name_themselves_too(module: ModuleType) -> None:
    """What webhooks, testing and export re-export from private modules reports their path."""
    for name in module.__all__:
        obj = getattr(module, name)
        if not (isinstance(obj, type) or inspect.isfunction(obj)):
            continue
        assert obj.__module__ in {module.__name__, "realtimekit_async"}, name
        assert pickle.loads(pickle.dumps(obj)) is obj, name
        typing.get_type_hints(obj)
        for _method, function in _functions_of(obj) if isinstance(obj, type) else ():
            typing.get_type_hints(function)
    assert realtimekit_async.webhooks.WebhookRecording.__module__ == "realtimekit_async.webhooks"
    assert realtimekit_async.export.ExportReport.__module__ == "realtimekit_async.export"


def test_type_hints_of_public_classes_and_their_methods_resolve() -> None:
    """``typing.get_type_hints`` works on every public class, method and function.

    The modules' annotations are strings (``from __future__ import annotations``),
    which ``get_type_hints`` would evaluate in ``realtimekit_async`` after the
    rename; they are stored evaluated, so users' tools (and cattrs) still work.
    """
    checked = 0
    for name, obj in _public_objects():
        hints = typing.get_type_hints(obj)
        if isinstance(obj, type) and attrs.has(obj):
            assert set(hints) >= {f.name for f in attrs.fields(obj)}, name
            assert not any(isinstance(f.type, str) for f in attrs.fields(obj)), name
        for _method, function in _functions_of(obj) if isinstance(obj, type) else ():
            typing.get_type_hints(function)
            typing.get_type_hints(function, include_extras=True)
            checked += 1
    assert checked > 100
    init = typing.get_type_hints(realtimekit_async.RealtimeKit.__init__)
    assert init["hooks"] == realtimekit_async.Hooks | None
    assert typing.get_type_hints(realtimekit_async.Recording)["status"] is (
        realtimekit_async.RecordingStatus
    )


def test_models_still_structure_and_unstructure() -> None:
    from realtimekit_async._converter import converter

    rec = converter.structure(recording_json(status="UPLOADED"), realtimekit_async.Recording)
    assert rec.status is realtimekit_async.RecordingStatus.UPLOADED
    assert converter.structure(converter.unstructure(rec), realtimekit_async.Recording) == rec
    params = realtimekit_async.StartRecordingParams(
        meeting_id="m1",
        audio_config=realtimekit_async.AudioConfig(codec=realtimekit_async.AudioCodec.AAC),
    )
    doc = converter.unstructure(params)
    assert doc == {"meeting_id": "m1", "audio_config": {"codec": "AAC"}}
    assert converter.structure(doc, realtimekit_async.StartRecordingParams) == params


def _sample_error(cls: type[BaseException]) -> BaseException:
    """An instance of ``cls`` with every required argument filled by its annotated type."""
    recording = realtimekit_async.Recording(
        "r1", realtimekit_async.RecordingStatus.ERRORED, datetime(2025, 1, 1, tzinfo=UTC), "r.mp4"
    )
    samples: dict[Any, Any] = {str: "x", int: 404, bytes: b"body", float: 1.5}
    hints = typing.get_type_hints(cls.__init__)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.kind is parameter.VAR_POSITIONAL:
            args.append("message")
        elif parameter.default is parameter.empty and parameter.kind is not parameter.VAR_KEYWORD:
            hint = hints[parameter.name]
            value = samples.get(hint, recording)
            if parameter.kind is parameter.KEYWORD_ONLY:
                kwargs[parameter.name] = value
            else:
                args.append(value)
    return cls(*args, **kwargs)


def test_public_objects_still_pickle() -> None:
    """Pickle finds classes by ``__module__`` + ``__qualname__``: ``realtimekit_async.X``."""
    for name, obj in _public_objects():
        assert pickle.loads(pickle.dumps(obj)) is obj, name
    recording = realtimekit_async.Recording(
        "r1", realtimekit_async.RecordingStatus.UPLOADED, datetime(2025, 1, 1, tzinfo=UTC), "r.mp4"
    )
    assert pickle.loads(pickle.dumps(recording)) == recording
    policy = realtimekit_async.RetryPolicy(max_retries=5)
    assert pickle.loads(pickle.dumps(policy)) == policy
    limits = realtimekit_async.DEFAULT_RATE_LIMITS
    assert pickle.loads(pickle.dumps(limits)) == limits
    status = realtimekit_async.RecordingStatus.UPLOADED
    assert pickle.loads(pickle.dumps(status)) is status


def test_every_public_exception_survives_pickling() -> None:
    """Errors cross process boundaries (multiprocessing, distributed workers) intact."""
    errors = [
        obj for _, obj in _public_objects() if isinstance(obj, type) and issubclass(obj, Exception)
    ]
    assert len(errors) == 24  # every exception class the package exports
    for cls in errors:
        error = _sample_error(cls)
        error.add_note("a note")
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls
        assert str(copy) == str(error)
        assert vars(copy) == vars(error), cls
    status = pickle.loads(pickle.dumps(realtimekit_async.NotFoundError("gone", status=404)))
    assert (status.status_code, status.body) == (404, b"")


def test_status_code_is_the_status_and_status_an_alias() -> None:
    error = realtimekit_async.NotFoundError("gone", status=404)
    assert error.status_code == 404
    assert error.status == 404
    assert "HTTP 404" in str(error)


async def test_with_options_copies_a_subclass_as_itself() -> None:
    class MyClient(realtimekit_async.RealtimeKit):
        pass

    async with MyClient(api_token="t", account_id="a", app_id="b") as client:
        copy = client.with_options(app_id="c")
        assert type(copy) is MyClient
        assert copy.options.app_id == "c"
        assert copy.session is client.session
        await copy.close()
        assert not client.session.closed
