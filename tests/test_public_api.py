"""The public surface: what __init__ exports is exactly what is public, sorted."""

from __future__ import annotations

import realtimekit_async


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


def test_type_hints_of_public_classes_resolve() -> None:
    """``typing.get_type_hints`` works on every public attrs class (users' tools rely on it).

    It resolves the string annotations in the defining module's namespace: the reason
    ``__module__`` is not rewritten to ``realtimekit_async`` as httpx does.
    """
    import typing

    import attrs

    for name in realtimekit_async.__all__:
        obj = getattr(realtimekit_async, name)
        if isinstance(obj, type) and attrs.has(obj):
            assert typing.get_type_hints(obj), name


def test_public_objects_still_pickle() -> None:
    import pickle
    from datetime import UTC, datetime

    recording = realtimekit_async.Recording(
        "r1", realtimekit_async.RecordingStatus.UPLOADED, datetime(2025, 1, 1, tzinfo=UTC), "r.mp4"
    )
    assert pickle.loads(pickle.dumps(recording)) == recording
    policy = realtimekit_async.RetryPolicy(max_retries=5)
    assert pickle.loads(pickle.dumps(policy)) == policy


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
