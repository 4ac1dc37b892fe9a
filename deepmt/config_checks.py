"""How a setting's value is checked and converted: :class:`Allowed` (a range or choices) and the conversion of a
value (a string typed after ``--set KEY=``, or a Python value) to a config field's annotated type.

:mod:`deepmt.config` holds the table of what each setting allows (:data:`deepmt.config.ALLOWED`) and calls
:func:`convert` through :func:`deepmt.config.check_setting`; this module knows no setting by name. Also the sizes a
U-Net of a given depth fits (:func:`check_unet_levels`), which the config and the engine's resource checks share.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import numbers
import os
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from deepmt.errors import SettingError

@dataclass(frozen=True)
class Allowed:
    """What a setting allows beyond its annotated type (applied to every element of a tuple).

    Numbers lie in ``[lo, hi]`` (``lo_open``/``hi_open`` exclude that bound; ``None`` = unbounded) or are one
    of ``choices``; strings are one of ``choices`` or match ``pattern`` (described by ``text``); ``length``
    fixes the size of a variable-length tuple (which is never empty).
    """

    lo: float | None = 0
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    pattern: str | None = None
    text: str = ""
    length: int | None = None

    def check(self, x: Any) -> bool:
        if isinstance(x, str):
            if self.pattern:
                return re.fullmatch(self.pattern, x) is not None
            words = [c for c in self.choices if isinstance(c, str)]
            return not words or x in words
        numbers_ = [c for c in self.choices if not isinstance(c, str)]
        if numbers_:
            return x in numbers_
        lo_ok = self.lo is None or (x > self.lo if self.lo_open else x >= self.lo)
        hi_ok = self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)
        return lo_ok and hi_ok

    def describe_number(self) -> str:
        numbers_ = [c for c in self.choices if not isinstance(c, str)]
        if numbers_:
            return "one of " + ", ".join(f"{c:g}" for c in numbers_)
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}" if self.hi is not None else ""

    def describe_string(self) -> str:
        words = [c for c in self.choices if isinstance(c, str)]
        return self.text or ("one of " + ", ".join(map(repr, words)) if words else "a string")


class _Refused(Exception):
    """A value does not fit a type (internal: :func:`check_setting` turns it into a SettingError)."""


def convert(key: str, value: Any, annotation: Any, allowed: Allowed) -> Any:
    """``value`` converted to ``annotation`` and checked against ``allowed``; a :class:`SettingError`
    (``key=value: expected ...``) for anything they do not allow."""
    try:
        return _coerce(value, annotation, allowed)
    except _Refused:
        shown = value if isinstance(value, str) else repr(value)
        raise SettingError(f"{key}={shown}: expected {_describe(annotation, allowed)}") from None


def unet_levels_allowed(side: int) -> int:
    """The most levels a U-Net can have on an input side of ``side`` px: each level halves the side, which must
    stay a whole number of pixels (at least 1), so ``side`` must be divisible by ``2**(levels-1)``. Fewer than 2
    means no U-Net fits (an odd side)."""
    side = int(side)
    levels = 1
    while side > 0 and side % (2**levels) == 0:
        levels += 1
    return levels


def check_unet_levels(levels: int, side: int, source: str = "data.hr_size") -> None:
    """A :class:`SettingError` unless a U-Net of ``levels`` levels (``model.seg.levels``) fits an input side of
    ``side`` px (from setting ``source``): ``side`` divisible by ``2**(levels-1)``, so its coarsest level is at
    least 1 px. The message names both settings and the levels that fit."""
    most = unet_levels_allowed(side)
    if 2 <= levels <= most:
        return
    need = 2 ** (int(levels) - 1)
    fits = (f"model.seg.levels from 2 to {most} fit" if most >= 2
            else "no U-Net fits (an odd side cannot be halved); change that size")
    raise SettingError(
        f"model.seg.levels={levels}: the U-Net halves its input {levels - 1} times, so each side it segments must be "
        f"divisible by 2**{levels - 1} = {need} px, but {source} gives {side} px; {fits}"
    )


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        # strings last: "auto" must not shadow a parsable list, and a list must be tried before its text
        return tuple(sorted(typing.get_args(annotation), key=lambda t: t is str))
    return (annotation,)


def _coerce(value: Any, annotation: Any, allowed: Allowed) -> Any:
    members = _members(annotation)
    if len(members) > 1:
        if type(None) in members and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
            return None
        for member in members:
            if member is not type(None):
                try:
                    return _coerce(value, member, allowed)
                except _Refused:
                    continue
        raise _Refused
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return _to_bool(value)
    if annotation is int:
        return _checked(_to_int(value), allowed)
    if annotation is float:
        return _checked(_to_float(value), allowed)
    if annotation is str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise _Refused
        return _checked(value, allowed)
    if origin is tuple:
        args = typing.get_args(annotation)
        items = _to_sequence(value)
        if args[-1] is Ellipsis:
            if not items or (allowed.length is not None and len(items) != allowed.length):
                raise _Refused
            args = (args[0],) * len(items)
        elif len(items) != len(args):
            raise _Refused
        return tuple(_coerce(v, a, allowed) for v, a in zip(items, args))
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        return {_coerce(k, key_type, Allowed()): _coerce(v, value_type, allowed) for k, v in _to_mapping(value).items()}
    return value  # an annotation this checker does not know: the owning module checks the value


def _checked(x: Any, allowed: Allowed) -> Any:
    if not allowed.check(x):
        raise _Refused
    return x


def _to_bool(value: Any) -> bool:
    if isinstance(value, (bool, numbers.Integral)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise _Refused


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise _Refused
    try:
        x = float(value)
    except ValueError:
        raise _Refused from None
    if not math.isfinite(x):
        raise _Refused
    return x


def _to_int(value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    x = _to_float(value)
    if not x.is_integer():
        raise _Refused
    return int(x)


def _to_sequence(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        raise _Refused
    text = value.strip()
    if text[:1] in "[(" and text[-1:] in ")]":
        text = text[1:-1]
    return [t.strip() for t in text.split(",")] if text.strip() else []


def _to_mapping(value: Any) -> dict[Any, Any]:
    """A mapping, its JSON text, or ``"name:value,name:value"`` (``""`` / ``"{}"``: empty) -> a dict."""
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str):
        raise _Refused
    text = value.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise _Refused from None
        if not isinstance(parsed, dict):
            raise _Refused
        return parsed
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, sep, v = item.partition(":")
        if not sep or not name.strip() or name.strip() in out:
            raise _Refused
        out[name.strip()] = v.strip()
    return out


def _describe(annotation: Any, allowed: Allowed) -> str:
    """What ``annotation`` + ``allowed`` accept, in words (for the error message)."""
    members = _members(annotation)
    if len(members) > 1:
        none = type(None) in members
        parts = [_describe(m, allowed) for m in members if m is not type(None)]
        return " or ".join(parts + (["none"] if none else []))
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        kind = "an integer" if annotation is int else "a number"
        rule = allowed.describe_number()
        return rule if rule.startswith("one of") else f"{kind} {rule}".strip()
    if annotation is str:
        return allowed.describe_string()
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        n = allowed.length if args[-1] is Ellipsis else len(args)
        inner = _describe(args[0], allowed)
        return f"a comma-separated list of {f'{n} ' if n is not None else ''}values, each {inner}"
    if typing.get_origin(annotation) is dict:
        return f"a comma-separated list of name:value pairs (or a JSON object), each value {_describe(typing.get_args(annotation)[1], allowed)}"
    return getattr(annotation, "__name__", str(annotation))


# --------------------------------------------------------------------------- config sections and --set items
def field_types(obj: Any) -> dict[str, Any]:
    """Field name -> resolved annotation of a config dataclass instance (``{}`` for anything else)."""
    return _type_hints(type(obj)) if dataclasses.is_dataclass(obj) else {}


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in names}


def did_you_mean(name: str, obj: Any, prefix: list[str]) -> str:
    """The end of an "unknown setting" message: the closest field of config section ``obj`` (at dotted ``prefix``),
    or the fields it has."""
    known = list(field_types(obj))
    close = difflib.get_close_matches(name, known, n=1)
    where = ".".join(prefix) or "the config"
    return f"; did you mean {'.'.join([*prefix, close[0]])!r}?" if close else f"; {where} has: {', '.join(known)}"


def parse_set_items(items: Sequence[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` items -> ``{KEY: VALUE}`` (values still strings: :func:`get_config` parses them by the
    field's type); a :class:`~deepmt.errors.SettingError` for an item without ``=``."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SettingError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=1e-3")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out
