"""Strict JSON in and out: what the runtime reads from files it did not write (model cards) is limited in
size, depth and numbers, and what it writes (JSONL lines, UDP datagrams) is always standard JSON.

Python's ``json`` reads ``NaN``/``Infinity`` tokens, turns ``1e400`` into ``inf``, recurses once per
nesting level and writes bare ``NaN``; strict parsers (``jq``, browsers, Rust, Go) reject such files.
Here a hostile or broken file ends in one ``ValueError`` line, and a non-finite number never reaches a
written record: ``dumps`` refuses it and names where it is.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64  # a model card nests 4 levels; 64 leaves room and stays far from the recursion limit
MAX_BYTES = 16 << 20
INT_LIMIT = 2 ** 63  # integers beyond 64 bits are no size, count or index a card can mean
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nesting(text: str, stop_at: int = MAX_DEPTH) -> int:
    """The deepest ``[``/``{`` nesting of JSON ``text`` (strings skipped), counted up to ``stop_at + 1``."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_at:
                    break
        elif c in "]}":
            depth -= 1
    return deepest


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not a JSON number (strict JSON has no NaN or Infinity)")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"the number {token[:40]} is out of the range of a 64-bit float")
    return value


def _bounded_int(token: str) -> int:
    if len(token.lstrip("-")) > 19 or not -INT_LIMIT <= int(token) < INT_LIMIT:
        raise ValueError(f"the integer {token[:40]}{'…' if len(token) > 40 else ''} is beyond 64 bits")
    return int(token)


def loads(text: str | bytes, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """Parse JSON strictly: at most ``max_bytes``, nested at most ``max_depth`` deep, finite 64-bit numbers.

    Raises:
        ValueError: one line saying what is wrong (not valid JSON, too large, too deep, a bad number).
    """
    if len(text) > max_bytes:
        raise ValueError(f"{len(text)} bytes is more than the {max_bytes >> 20} MiB a JSON file here may hold")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    depth = nesting(text, max_depth)
    if depth > max_depth:
        raise ValueError(f"it nests deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:  # unreachable after the depth check; kept so no parser path can raise it
        raise ValueError(f"it nests deeper than {max_depth} levels") from None


def dumps(record: Any) -> str:
    """Compact standard JSON (``allow_nan=False``).

    Raises:
        ValueError: a non-finite number in ``record``, naming where it is (e.g. ``faces[0].au_prob.AU12``).
    """
    try:
        return json.dumps(record, separators=(",", ":"), allow_nan=False)
    except ValueError:
        where = _non_finite(record, "") or "?"
        raise ValueError(f"the record has a non-finite number at {where}, which strict JSON cannot hold") from None


def _non_finite(value: Any, path: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(top)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _non_finite(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip("."))
        if found:
            return found
    return None
