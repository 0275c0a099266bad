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
