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
