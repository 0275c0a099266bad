"""Give the public names the public module, keeping their annotations resolvable.

Like httpx, the package sets ``__module__ = "realtimekit_async"`` on what it
exports, so tracebacks, reprs, pickles and docs show ``realtimekit_async.NotFoundError``
rather than the private module it is defined in (``webhooks`` and ``testing``
do the same for what they re-export, with their own name). The modules use
``from __future__ import annotations``, so their annotations are strings, and
``typing.get_type_hints`` (and through it ``attrs.resolve_types`` and cattrs)
evaluates a class's strings in ``sys.modules[cls.__module__]``: renamed as they
are, they would be evaluated in the wrong namespace. So the annotations of each
public class, of the functions defined on it and of each public function are
evaluated first, in their defining module (plus the package's own names, which
some modules import only for type checking to avoid import cycles), and stored
evaluated. A type from an optional extra (OpenTelemetry's) is not imported for
this: it evaluates to ``typing.Any``.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

__all__ = ["PUBLIC_MODULE", "publish"]

PUBLIC_MODULE: Final = "realtimekit_async"

#: Names some annotations take from optional extras, which the core never imports.
_OPTIONAL_TYPES: Final[Mapping[str, Any]] = {"Span": Any, "TracerProvider": Any}


def publish(
    namespace: Mapping[str, Any], names: Iterable[str], module: str = PUBLIC_MODULE
) -> None:
    """Give each class and function ``namespace[name]`` defined in a private module the
    public ``module``, its annotations resolved first (see the module's docstring).

    Names already public (defined in a public module, or published before)
    keep their module, but their annotations are resolved too: some name
    classes their module imports only for type checking. Raises ``NameError``
    (at import, so a test sees it) if an annotation names something neither
    its module nor the package defines.
    """
    objects = [obj for name in names if _ours(obj := namespace[name])]
    package = _package_names(namespace)
    for obj in objects:
        if isinstance(obj, type):
            _resolve_class(obj, package)
        else:
            _resolve_function(obj, package)
    for obj in objects:
        if any(part.startswith("_") for part in obj.__module__.split(".")[1:]):
            obj.__module__ = module


def _ours(obj: object) -> bool:
    """A class or function of the package's."""
    is_code = isinstance(obj, type) or inspect.isfunction(obj)
    return is_code and str(getattr(obj, "__module__", "")).startswith(PUBLIC_MODULE)


def _package_names(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """What the package's loaded modules export, the public names and the optional placeholders."""
    names: dict[str, Any] = dict(_OPTIONAL_TYPES)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(PUBLIC_MODULE + "._") and module is not None:
            names.update({n: getattr(module, n) for n in getattr(module, "__all__", ())})
    names.update(namespace)
    return names


def _module_globals(obj: Any) -> dict[str, Any]:
    module = sys.modules.get(obj.__module__)
    return dict(vars(module)) if module is not None else {}


def _resolve_class(cls: type, package: Mapping[str, Any]) -> None:
    """Store the evaluated annotations of ``cls`` and of every function defined on it."""
    module_globals = {**package, **_module_globals(cls)}
    if attrs.has(cls):
        attrs.resolve_types(cls, globalns=module_globals, include_extras=True)
    own = inspect.get_annotations(cls)
    if own:
        # A stand-in holding only this class's own annotations: the bases' are
        # evaluated (or already were) in their own modules.
        stand_in = type(cls.__name__, (), {"__annotations__": dict(own)})
        cls.__annotations__ = typing.get_type_hints(
            stand_in, globalns=module_globals, localns=dict(vars(cls)), include_extras=True
        )
    for function in _functions_of(cls):
        _resolve_function(function, module_globals)


def _functions_of(cls: type) -> Iterator[Any]:
    """The plain functions defined on ``cls``: methods, static/class methods, property accessors."""
    for value in vars(cls).values():
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            yield from (f for f in (value.fget, value.fset, value.fdel) if f is not None)
        elif inspect.isfunction(value):
            yield value


def _resolve_function(function: Any, namespace: Mapping[str, Any]) -> None:
    """Store the evaluated annotations of ``function``, evaluated in its own module first."""
    if not function.__annotations__:
        return
    scope = {**namespace, **function.__globals__}
    function.__annotations__ = typing.get_type_hints(function, globalns=scope, include_extras=True)
