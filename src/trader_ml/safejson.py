"""The JSON a store holds, parsed with its nesting depth and top-level shape checked first.

Python's parser recurses once per level: a file of 200,000 opening brackets (under a megabyte)
raises RecursionError in whatever reads it. Every latest.json, manifest, day marker and daily
row file goes through ``loads`` instead, so damage becomes one line saying which file and what
is wrong, never a traceback. Standard library only: serving uses it.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

from trader_ml.errors import ValidationError

MAX_DEPTH = 32  # the deepest file trader-ml writes nests 5 levels
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class DamagedJSON(ValidationError):
    """A stored JSON file is not JSON, nests too deep, or is not the shape its reader needs."""


def nesting_depth(text: str) -> int:
    """How deep ``text``'s arrays and objects nest (brackets inside strings do not count)."""
    bare = _STRING.sub("", text) if '"' in text else text
    opens = bare.count("[") + bare.count("{")
    if opens <= 1:
        return opens
    return max(accumulate(_STEP[b] for b in _BRACKET.findall(bare)))


def loads(data: bytes | str, where: str, max_depth: int = MAX_DEPTH) -> object:
    """The value ``data`` holds; DamagedJSON naming ``where`` when it is not UTF-8 JSON or nests
    deeper than ``max_depth``."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError:
        raise DamagedJSON(f"{where}: not UTF-8 text (damaged)") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise DamagedJSON(f"{where}: nests {depth} levels deep, over the {max_depth} any trader-ml file uses (damaged)")
    try:
        return json.loads(text)
    except ValueError as e:
        raise DamagedJSON(f"{where}: not valid JSON ({getattr(e, 'msg', e)}; truncated or damaged)") from None
    except RecursionError:  # unreachable after the depth check; kept so no reader ever sees it
        raise DamagedJSON(f"{where}: nests too deep (damaged)") from None


def loads_object(data: bytes | str, where: str, required: tuple[str, ...] = ()) -> dict:
    """A JSON object with at least the ``required`` keys; DamagedJSON otherwise."""
    value = loads(data, where)
    if not isinstance(value, dict):
        raise DamagedJSON(f"{where}: expected a JSON object, found {type(value).__name__} (damaged)")
    missing = [k for k in required if k not in value]
    if missing:
        raise DamagedJSON(f"{where}: missing key(s) {', '.join(missing)} (damaged)")
    return value
