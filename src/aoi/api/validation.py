"""Request values checked before they reach the database or the file system.

Each check answers a clear 422 for what would otherwise be a 500 further down: PostgreSQL refuses NUL
in text and strings longer than their column, Python's JSON parser recurses once per nesting level,
and a product name becomes a hot-folder subfolder.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from aoi.api.errors import ApiError
from aoi.storage.records import as_utc

# A letter or digit first: not '.' (hidden, '..'), not '-' (read as an option by shell tools), not '_'.
PRODUCT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED_PRODUCT_NAMES = frozenset({"done", "failed"})  # the hot folder's own subfolders
PX_PER_MM_RANGE = (1.0, 100_000.0)
MAX_JSON_CHARS = 16_384
MAX_JSON_DEPTH = 32
MAX_JSON_INTEGER = 2**53  # every number in these objects becomes a float; larger integers overflow or lose digits

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_RECORD_ID = re.compile(r"[0-9a-f]{32}")
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings (skipped) and brackets


def invalid(detail: str) -> ApiError:
    return ApiError(422, "invalid_request", detail)


def has_control_chars(value: str) -> bool:
    return _CONTROL.search(value) is not None


def plain_text(value: str, what: str, max_chars: int | None = None) -> str:
    """`value` when it holds no control character (PostgreSQL refuses NUL) and fits its column."""
    if has_control_chars(value):
        raise invalid(f"{what} must not contain control characters (NUL, newline, tab...)")
    if max_chars is not None and len(value) > max_chars:
        raise invalid(f"{what} is {len(value)} characters long; the limit is {max_chars}")
    return value


def is_record_id(value: str) -> bool:
    """Inspection and defect ids are 32 lowercase hex digits (uuid4): anything else names no record."""
    return _RECORD_ID.fullmatch(value) is not None


def product_name(name: str) -> str:
    """A name that is safe as a hot-folder subfolder and cannot be mistaken for a product id."""
    name = name.strip()
    if PRODUCT_NAME_PATTERN.fullmatch(name) is None:
        raise invalid(
            f"product name {name[:80]!r} must be 1 to 64 letters, digits, '-', '_' or '.', starting with a letter"
            " or a digit"
        )
    if name.lower() in RESERVED_PRODUCT_NAMES:
        raise invalid(f"product name {name!r} is reserved (the hot folder's {name.lower()}/ folder)")
    if is_record_id(name):
        raise invalid(f"product name {name!r} looks like a product id (32 hex digits)")
    return name


def px_per_mm(value: float) -> float:
    low, high = PX_PER_MM_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise invalid(f"px_per_mm must be a finite number from {low:g} to {high:g}, got {value}")
    return value


def json_object(text: str, what: str) -> dict[str, Any]:
    """Parse a small JSON object: size and nesting are bounded before parsing, NaN, Infinity and integers
    beyond +-2^53 refused."""
    if len(text) > MAX_JSON_CHARS:
        raise invalid(f"{what} is {len(text)} characters long; the limit is {MAX_JSON_CHARS}")
    depth = deepest = 0
    for token in _JSON_TOKEN.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif bracket in ("]", "}"):
            depth -= 1
    if deepest > MAX_JSON_DEPTH:
        raise invalid(f"{what} is nested {deepest} levels deep; the limit is {MAX_JSON_DEPTH}")
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int)
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers beyond +-2^53
        raise ApiError(422, "malformed_json", f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise invalid(f"{what} must be a JSON object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _bounded_int(digits: str) -> int:
    """An integer within +-2^53; past that, float() of it overflows (10**400) or rounds (2**63 + 1)."""
    if len(digits.lstrip("-")) > 16 or abs(value := int(digits)) > MAX_JSON_INTEGER:
        shown = digits if len(digits) <= 24 else f"{digits[:12]}...({len(digits)} digits)"
        raise ValueError(f"the integer {shown} is out of range; integers here are within +-2^53")
    return value


def utc_moment(moment: datetime | None, what: str) -> datetime | None:
    """`moment` in UTC; 422 when it falls outside the years 1 to 9999 once converted."""
    if moment is None:
        return None
    try:
        return as_utc(moment)
    except OverflowError:
        raise invalid(f"{what} {moment.isoformat()} is out of range once converted to UTC") from None
