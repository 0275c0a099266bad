"""The one cattrs converter that maps the models to and from JSON-ready data.

Decoding is lenient in the ways a long-lived SDK needs (see API-FACTS):
unknown keys are ignored, unknown enum values become extra members that keep
the raw string, timestamps with or without fractions become aware datetimes,
and numbers sent as ``1`` or ``1.0`` are accepted. It never loses information
silently: a fractional number for an integer field (``file_size: 1.5``) and
anything but a string for a string field (``"id": null``) are errors, not
truncated or turned into ``'None'``. Encoding leaves out every field still at
its default, so a request carries only what the user set.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from types import NoneType, UnionType
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import attrs
from cattrs import Converter
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._fastdecode import FastPaths, register_fast_hooks
from ._models import (
    Caller,
    Meeting,
    Paging,
    Recording,
    RecordingPage,
    StartReason,
    StopReason,
    StorageConfig,
)
from ._webhook_models import (
    DownloadUrl,
    RecordingStatusUpdate,
    TrackDownload,
    WebhookMeeting,
    WebhookOrganizer,
    WebhookRecording,
)

__all__ = ["converter", "format_datetime", "parse_datetime"]

_E = TypeVar("_E", bound=StrEnum)

# A hostile or buggy server could send endless distinct values; cache only a few.
_MAX_CACHED_UNKNOWN = 256
_unknown_members: dict[tuple[type[StrEnum], str], StrEnum] = {}


def _unknown_member(cls: type[_E], value: str) -> _E:
    """Build (once) a member of ``cls`` for a value the SDK does not know yet."""
    key = (cls, value)
    member = _unknown_members.get(key)
    if member is None:
        # Exactly what Enum does for its own members: a str subclass instance
        # with _name_/_value_ set, so `==`, `str()` and `.value` all behave.
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        if len(_unknown_members) < _MAX_CACHED_UNKNOWN:
            _unknown_members[key] = member
    return member  # type: ignore[return-value]


def _structure_open_enum(value: Any, cls: type[_E]) -> _E:
    member = cls._value2member_map_.get(value)
    if member is not None:
        return member  # type: ignore[return-value]
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a valid {cls.__name__}")
    return _unknown_member(cls, value)


def _open_enum_of(type_: Any) -> type[StrEnum] | None:
    """E for a request field typed ``E | str`` or ``E | str | None`` (E a StrEnum), else None."""
    if get_origin(type_) not in (Union, UnionType):
        return None
    rest = set(get_args(type_)) - {str, NoneType}
    if str not in get_args(type_) or len(rest) != 1:
        return None
    (enum,) = rest
    return enum if isinstance(enum, type) and issubclass(enum, StrEnum) else None


def _open_enum_hook(type_: Any) -> Any:
    enum = _open_enum_of(type_)
    assert enum is not None
    nullable = NoneType in get_args(type_)

    def structure(value: Any, _: Any) -> Any:
        if value is None and nullable:
            return None
        return _structure_open_enum(value, enum)

    return structure


def parse_datetime(value: Any, _: Any = None) -> datetime:
    """Parse an API timestamp (ISO 8601, ``Z`` or offset, any fraction) as aware UTC-safe."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    else:
        raise ValueError(f"{value!r} is not a timestamp")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_datetime(value: datetime) -> str:
    """Format an aware datetime the way the API writes them (UTC, milliseconds, ``Z``)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _structure_bool(value: Any, _: Any) -> bool:
    # Registered explicitly: bool subclasses int, so it would otherwise get the int hook.
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _structure_int(value: Any, _: Any) -> int:
    # JSON numbers arrive as int or float (file_size: 0 vs 0.0); webhooks send strings.
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(f"{value!r} is not a whole number (it would be truncated)")
    if isinstance(value, str):
        return int(value)  # int("1.5") raises: a string is never truncated either
    raise ValueError(f"{value!r} is not a number")


def _structure_str(value: Any, _: Any) -> str:
    # cattrs' own hook is str(value): null would become 'None', 12 would become '12'.
    if isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not a string")


# -- webhook bodies: camelCase on the wire, unlike the REST API --------------------
_CAMEL_CASE_CLASSES: Final = (
    WebhookOrganizer,
    WebhookMeeting,
    WebhookRecording,
    RecordingStatusUpdate,
)
# Keys where plain camelCase would guess wrong.
_CAMEL_EXCEPTIONS: Final = {"room_uuid": "roomUUID"}


def _camel(name: str) -> str:
    if name in _CAMEL_EXCEPTIONS:
        return _CAMEL_EXCEPTIONS[name]
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _register_webhook_hooks(conv: Converter) -> None:
    # A composite recording sends one URL; a track recording a list of layers.
    # Registered first: the class hooks below look it up when they are built.
    def structure_download_url(value: Any, _: Any) -> DownloadUrl:
        if value is None or isinstance(value, str):
            return value
        return conv.structure(value, tuple[TrackDownload, ...])

    conv.register_structure_hook(DownloadUrl, structure_download_url)
    for cls in _CAMEL_CASE_CLASSES:
        names: dict[str, Any] = {a.name: override(rename=_camel(a.name)) for a in attrs.fields(cls)}
        conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv, **names))
        conv.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **names)
        )


def _make_converter() -> Converter:
    conv = Converter(omit_if_default=True, forbid_extra_keys=False, detailed_validation=False)
    # Decoding hot path (see _fastdecode): first, since class hooks bind field hooks when built.
    register_fast_hooks(
        conv,
        (RecordingPage, Recording, Meeting, Paging, StartReason, StopReason, StorageConfig),
        FastPaths(
            exact={_structure_int: int, _structure_bool: bool, _structure_str: str},
            datetime_hook=parse_datetime,
            enum_hook=_structure_open_enum,
        ),
    )
    conv.register_structure_hook(datetime, parse_datetime)
    conv.register_unstructure_hook(datetime, format_datetime)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    # Registered on the StrEnum base (which precedes `str` in every member's MRO)
    # so that singledispatch picks these over cattrs' plain `str` handling.
    conv.register_structure_hook(StrEnum, _structure_open_enum)
    # Request classes decoded from answers (Meeting.recording_config) type their
    # enum fields `E | str`, so that newer values can be sent: decode them as E.
    conv.register_structure_hook_factory(lambda t: _open_enum_of(t) is not None, _open_enum_hook)
    # str() of a StrEnum member, known or not, is its wire value; plain strings pass.
    conv.register_unstructure_hook(StrEnum, str)
    user_id = override(rename="user_Id")
    conv.register_structure_hook(Caller, make_dict_structure_fn(Caller, conv, user_id=user_id))
    conv.register_unstructure_hook(
        Caller,
        make_dict_unstructure_fn(Caller, conv, _cattrs_omit_if_default=True, user_id=user_id),
    )
    _register_webhook_hooks(conv)
    return conv


converter: Final[Converter] = _make_converter()
