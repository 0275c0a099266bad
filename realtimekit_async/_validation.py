"""Argument checks shared by every public entry point.

Each check returns the value it accepted (so a call can sit inside an
expression) and raises :class:`ValidationError` naming the argument
otherwise, before any request is sent. ``bool`` is refused wherever a number
is expected: ``True`` is an ``int`` to Python, never a count or a duration to
a user. :func:`attribute` turns a check into an attrs validator.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import attrs

from ._exceptions import ValidationError

__all__ = [
    "attribute",
    "check_id",
    "check_int",
    "check_non_empty",
    "check_non_negative",
    "check_seconds",
    "renamed",
]


def check_int(field: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not a bool) in ``low..high``; else raise."""
    bound = f"between {low} and {high}" if high is not None else f">= {low}"
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        raise ValidationError(field, f"must be an integer {bound}, got {value!r}")
    return value


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def check_seconds(field: str, value: object) -> float:
    """Return ``value`` as float seconds if it is a finite number > 0; else raise."""
    if not _is_number(value) or value <= 0:  # type: ignore[operator]
        raise ValidationError(field, f"must be a positive number of seconds, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_non_negative(field: str, value: object, unit: str = "seconds") -> float:
    """Return ``value`` as a float if it is a finite number >= 0 (of ``unit``); else raise."""
    if not _is_number(value) or value < 0:  # type: ignore[operator]
        raise ValidationError(field, f"must be a number of {unit} >= 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_non_empty(field: str, value: object) -> str:
    """Return ``value`` if it is a string with something besides whitespace; else raise."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    return value


def check_id(field: str, value: object) -> str:
    """Return ``value`` if it can be a path id (non-empty, not ``.`` or ``..``); else raise."""
    check_non_empty(field, value)
    if value in {".", ".."}:
        raise ValidationError(field, f"{value!r} is not a valid id")
    return value  # type: ignore[return-value]


def attribute(check: Callable[[str, object], object], *, optional: bool = False) -> Any:
    """An attrs validator running ``check(name, value)`` (skipping ``None`` if ``optional``)."""

    def validate(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if value is not None or not optional:
            check(attr.name, value)

    return validate


def renamed(old: str, old_value: object, new: str, new_value: object, *, stacklevel: int) -> Any:
    """The value given for ``new``, or for its deprecated name ``old`` (``None``: not given).

    Using ``old`` emits a :class:`DeprecationWarning` naming ``new``; ``stacklevel``
    is as for :func:`warnings.warn` called where this is (2: the caller's caller).
    Giving both raises.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise ValidationError(old, f"is the deprecated name of {new}; pass only {new}")
    warnings.warn(
        f"{old}= is deprecated; pass {new}= instead", DeprecationWarning, stacklevel=stacklevel + 1
    )
    return old_value
