"""The JSON a store holds, parsed with its damage and its top-level shape named.

Python's parser recurses once per level: a file of 200,000 opening brackets (under a megabyte)
raises RecursionError. CPython's own parser raises it, cleanly, on 3.11, 3.12 and 3.13 (checked
on 200,000 and 2,000,000 levels), so that error is the depth check: every latest.json,
manifest, day marker and daily row file goes through ``loads``, and damage becomes one line
saying which file and what is wrong, never a traceback. Standard library only: serving uses it.
"""

from __future__ import annotations

import json

from trader_ml.errors import ValidationError


class DamagedJSON(ValidationError):
    """A stored JSON file is not JSON, nests too deep, or is not the shape its reader needs."""


def loads(data: bytes | str, where: str) -> object:
    """The value ``data`` holds; DamagedJSON naming ``where`` when it is not UTF-8 JSON or nests
    deeper than the parser can follow."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError:
        raise DamagedJSON(f"{where}: not UTF-8 text (damaged)") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise DamagedJSON(f"{where}: not valid JSON ({getattr(e, 'msg', e)}; truncated or damaged)") from None
    except RecursionError:
        raise DamagedJSON(f"{where}: nests too deep for any trader-ml file (damaged)") from None


def loads_object(data: bytes | str, where: str, required: tuple[str, ...] = ()) -> dict:
    """A JSON object with at least the ``required`` keys; DamagedJSON otherwise."""
    value = loads(data, where)
    if not isinstance(value, dict):
        raise DamagedJSON(f"{where}: expected a JSON object, found {type(value).__name__} (damaged)")
    missing = [k for k in required if k not in value]
    if missing:
        raise DamagedJSON(f"{where}: missing key(s) {', '.join(missing)} (damaged)")
    return value


# Shapes: what a reader needs of a parsed value, checked before it reads any of it. A shape is a
# type (``str``, ``int``, ``bool``, ``dict``, ``list``), ``NUMBER`` (an int or a finite float,
# never a bool), a ``Range``, ``Optional(shape)``, ``Each(shape)`` (every value of an object; of a
# list too with ``lists=True``), ``OneOf`` a few strings, or a dict of required keys and their shapes
# (other keys are allowed).
NUMBER = "number"


class Optional:
    def __init__(self, shape) -> None:
        self.shape = shape


class Each:
    """Every value of an object (or, with ``lists=True``, every item of a list) of ``shape``."""

    def __init__(self, shape, lists: bool = False) -> None:
        self.shape, self.lists = shape, lists


class OneOf:
    """One of a few strings."""

    def __init__(self, *values: str) -> None:
        self.values = values


class Range:
    """A number from ``low`` to ``high``, both included."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


def problem(value, shape, path: str = "") -> str | None:
    """Where and how ``value`` differs from ``shape``, in words; None when it fits."""
    here = path or "the file"
    if isinstance(shape, Optional):
        return None if value is None else problem(value, shape.shape, path)
    if shape == NUMBER or isinstance(shape, Range):
        if not _is_number(value):
            return f"{here}: expected a number, found {_kind(value)}"
        if isinstance(shape, Range) and not shape.low <= value <= shape.high:
            return f"{here}: {value!r} is outside {shape.low:g} .. {shape.high:g}"
        return None
    if isinstance(shape, OneOf):
        if value in shape.values and isinstance(value, str):
            return None
        return f"{here}: {str(value)[:40]!r} is not one of {', '.join(shape.values)}"
    if isinstance(shape, Each):
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list) and shape.lists:
            items = enumerate(value)
        else:
            return f"{here}: expected an object{' or a list' if shape.lists else ''}, found {_kind(value)}"
        for key, item in items:
            found = problem(item, shape.shape, f"{path}[{key!r}]" if path else f"[{key!r}]")
            if found:
                return found
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{here}: expected an object, found {_kind(value)}"
        for key, inner in shape.items():
            if key not in value:
                return f"{here}: missing key {key}"
            found = problem(value[key], inner, f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if shape is int:
        return (
            None
            if isinstance(value, int) and not isinstance(value, bool)
            else f"{here}: expected an integer, found {_kind(value)}"
        )
    return None if isinstance(value, shape) else f"{here}: expected {shape.__name__}, found {_kind(value)}"


def check(value, shape, where: str):
    """``value`` itself when it fits ``shape``; DamagedJSON naming ``where`` and the place otherwise."""
    found = problem(value, shape)
    if found:
        raise DamagedJSON(f"{where}: {found[:200]} (damaged)")
    return value


def loads_shaped(data: bytes | str, where: str, shape):
    """``loads`` and ``check`` in one: the value, of the shape its reader needs."""
    return check(loads(data, where), shape, where)
