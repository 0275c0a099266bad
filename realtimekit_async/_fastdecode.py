"""Generated structure hooks for the response classes: the hot path of listing.

cattrs' generated hooks call a field hook for every value, and its ``X | None``
handling looks X's hook up again for every value. Listing 20,000 recordings
runs those hooks about half a million times, which made decoding cost more
than reading and parsing the JSON. The hooks built here give the same results
as the converter's own hooks, with the common cases inlined:

* a key is read once (``o.get`` for a field that defaults to ``None``);
* ``None`` for an optional field is ``None`` without a call;
* a value whose type already is the target (``str``, ``int``, ``bool``) is
  kept as is when the field's hook would return it unchanged;
* a known enum value is looked up in the enum's value map, an ISO timestamp
  string goes straight to ``datetime.fromisoformat``;
* the instance is built by setting its slots when that is all its
  attrs-generated ``__init__`` would do (no validators, converters or hooks);
* everything else goes to the field's hook from the converter, so unknown
  enum values, floats for ints, epoch timestamps and errors behave exactly as
  there. Errors are the hooks' own exceptions, as with
  ``detailed_validation=False``.

Only classes whose fields are all required, or optional defaulting to
``None``, without aliases or keyword-only fields, are generated; anything
else gets cattrs' own hook.

Nothing here depends on attrs' or cattrs' internals. Whether ``__init__`` only
stores its arguments is judged from attrs' documented surface (the class
defines ``__init__`` and no ``__attrs_init__``; no validators, converters or
init hooks), and the slots are set with Python's own slot descriptors. Measured
(a page of 100 full recordings, median of 3 runs of 15 x 20 decodes, a shared
2-core machine, so +-30 %): these hooks 23 us a recording; the same hooks
calling ``cls(...)`` instead of setting slots 32 us; cattrs' own hooks 55 us.
Setting slots is a quarter of the decode, so it stays. cattrs' private
``Converter._structure_call`` (its ``str``/``int``/``float`` hook) is no
longer looked for: the SDK registers its own hooks for those types, so no
generated field ever reached that branch (same figures before and after).
"""

from __future__ import annotations

import linecache
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from types import MemberDescriptorType, NoneType, UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import attrs
from cattrs import Converter
from cattrs.gen import make_dict_structure_fn

__all__ = ["FastPaths", "make_structure_fn", "register_fast_hooks"]

StructureHook = Callable[[Any, Any], Any]


@attrs.frozen
class FastPaths:
    """What the generator may inline, by the identity of the converter's hooks.

    ``exact`` maps a hook to the type T for which ``hook(v, _) is v`` whenever
    ``type(v) is T``. ``datetime_hook`` must turn a ``str`` into
    ``datetime.fromisoformat(v)`` made aware (UTC when naive). ``enum_hook``
    must return ``cls._value2member_map_[v]`` for every known value ``v``.
    """

    exact: Mapping[Any, type] = attrs.field(factory=dict)
    datetime_hook: Any = None
    enum_hook: Any = None


def _optional_inner(type_: Any) -> Any | None:
    """X for ``X | None`` (exactly one X), else None."""
    if get_origin(type_) not in (Union, UnionType):
        return None
    args = get_args(type_)
    if len(args) != 2 or NoneType not in args:
        return None
    return args[0] if args[1] is NoneType else args[1]


def _supported(cls: type, hints: Mapping[str, Any]) -> bool:
    for a in attrs.fields(cls):
        if not a.init or a.kw_only or a.alias != a.name:
            return False
        if a.default is attrs.NOTHING:
            continue
        if a.default is not None or _optional_inner(hints[a.name]) is None:
            return False
    return True


def _plain_slots(cls: type) -> bool:
    """Whether setting the slots directly builds exactly what ``cls(...)`` would.

    True for an ``__init__`` attrs generated for this very class (it defines
    ``__init__`` and, as attrs does when it leaves ``__init__`` to the class, no
    ``__attrs_init__``) on a slotted class whose fields are all its own slots,
    with no validators, converters or pre/post-init hooks (and no hidden slot
    such as a cached hash). Then calling ``__init__`` only stores each argument,
    which the slot descriptors (Python's, not attrs') do without going through
    ``object.__setattr__`` (what a frozen class's ``__init__`` uses).
    """
    if not attrs.has(cls) or "__init__" not in cls.__dict__ or "__attrs_init__" in cls.__dict__:
        return False
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        return False
    fields = attrs.fields(cls)
    names = {a.name for a in fields}
    if set(cls.__dict__.get("__slots__", ())) - {"__weakref__"} != names:
        return False
    return all(
        a.validator is None
        and a.converter is None
        and isinstance(cls.__dict__.get(a.name), MemberDescriptorType)
        for a in fields
    )


def _value_code(
    n: int, type_: Any, conv: Converter, paths: FastPaths, ns: dict[str, Any]
) -> list[str]:
    """Lines setting ``a{n}`` from a value ``v`` known not to be None-for-optional."""
    hook = conv.get_structure_hook(type_)
    a, h, t = f"a{n}", f"h{n}", f"t{n}"
    ns[h], ns[t] = hook, type_
    exact = paths.exact.get(hook)
    if exact is not None:
        ns[f"x{n}"] = exact
        return [f"{a} = v if type(v) is x{n} else {h}(v, {t})"]
    if hook is paths.datetime_hook and paths.datetime_hook is not None:
        return [
            "if type(v) is str:",
            f"    {a} = _fromisoformat(v)",
            f"    if {a}.tzinfo is None:",
            f"        {a} = {a}.replace(tzinfo=_UTC)",
            "else:",
            f"    {a} = {h}(v, {t})",
        ]
    if (
        hook is paths.enum_hook
        and paths.enum_hook is not None
        and isinstance(type_, type)
        and issubclass(type_, Enum)
    ):
        ns[f"m{n}"] = type_._value2member_map_
        return [
            "try:",
            f"    {a} = m{n}[v]",
            "except (KeyError, TypeError):",
            f"    {a} = {h}(v, {t})",
        ]
    return [f"{a} = {h}(v, {t})"]


def make_structure_fn(cls: type, conv: Converter, paths: FastPaths) -> StructureHook:
    """A structure hook for the attrs class ``cls`` (cattrs' own if unsupported).

    Fields are read in the order cattrs' hook reads them (the defaulted ones,
    then the required ones), so even the first error of a bad document is the
    same. Anything but a ``dict`` goes to cattrs' own hook.
    """
    hints = get_type_hints(cls)
    if not _supported(cls, hints):
        hook: StructureHook = make_dict_structure_fn(cls, conv)
        return hook
    built: list[StructureHook] = []

    def fallback(o: Any, type_: Any) -> Any:
        # Built on first use: generating it costs more than every dict decoded.
        if not built:
            built.append(make_dict_structure_fn(cls, conv))
        return built[0](o, type_)

    ns: dict[str, Any] = {
        "_cls": cls,
        "_fallback": fallback,
        "_fromisoformat": datetime.fromisoformat,
        "_UTC": UTC,
    }
    lines = [
        f"def structure_{cls.__name__}(o, _=None):",
        "    if type(o) is not dict:",
        "        return _fallback(o, _cls)",
    ]
    fields = list(enumerate(attrs.fields(cls)))
    for n, field in fields:
        if field.default is attrs.NOTHING:
            continue
        # optional, defaulting to None: a missing key and null are both None
        lines.append(f"    v = o.get({field.name!r})")
        lines.append("    if v is None:")
        lines.append(f"        a{n} = None")
        lines.append("    else:")
        body = _value_code(n, _optional_inner(hints[field.name]), conv, paths, ns)
        lines.extend(f"        {line}" for line in body)
    for n, field in fields:
        if field.default is not attrs.NOTHING:
            continue
        lines.append(f"    v = o[{field.name!r}]")
        lines.extend(f"    {line}" for line in _value_code(n, hints[field.name], conv, paths, ns))
    if _plain_slots(cls):
        ns["_new"] = object.__new__
        lines.append("    self = _new(_cls)")
        for n, field in fields:
            ns[f"_set{n}"] = cls.__dict__[field.name].__set__
            lines.append(f"    _set{n}(self, a{n})")
        lines.append("    return self")
    else:
        lines.append(f"    return _cls({', '.join(f'a{n}' for n, _ in fields)})")
    source = "\n".join(lines) + "\n"
    filename = f"<realtimekit_async generated structure {cls.__module__}.{cls.__qualname__}>"
    exec(compile(source, filename, "exec"), ns)  # our own generated source
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    generated: StructureHook = ns[f"structure_{cls.__name__}"]
    return generated


def _make_optional_hook(conv: Converter) -> Callable[[Any], StructureHook]:
    """A factory for ``X | None`` hooks that look X's hook up once, when built.

    Same results as cattrs' own: ``None`` stays ``None``, anything else goes
    to X's hook. (It takes precedence over a hook registered for a two-member
    optional union itself; the SDK registers none.)
    """

    def factory(type_: Any) -> StructureHook:
        inner = _optional_inner(type_)
        hook = conv.get_structure_hook(inner)

        def structure_optional(value: Any, _: Any) -> Any:
            return None if value is None else hook(value, inner)

        return structure_optional

    return factory


def register_fast_hooks(conv: Converter, classes: Iterable[type], paths: FastPaths) -> None:
    """Have ``conv`` build ``X | None`` hooks and the hooks of ``classes`` here.

    Call it before any class hook is generated (they bind their field hooks
    when built). The class hooks are generated lazily on first use, so every
    hook a field needs (nested classes included) is final by then.
    """
    conv.register_structure_hook_factory(
        lambda t: _optional_inner(t) is not None, _make_optional_hook(conv)
    )
    chosen = frozenset(classes)
    conv.register_structure_hook_factory(
        lambda t: t in chosen, lambda t: make_structure_fn(t, conv, paths)
    )
