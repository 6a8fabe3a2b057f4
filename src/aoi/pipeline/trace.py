"""A product's traceability setup: where its boards' lot and panel ids come from, and reading them.

A scanner names its files after the board (`L2405_P0117.png`), and many panels carry a 2-D code with
their serial: a QR code, or (substrates and PCB panels, very often) a Data Matrix (ECC200). A product
says how to read both: `file_pattern`, a regular expression with the named groups `lot` and/or `panel`
searched in the file name (without folders and extension), and `code`: "qr" to decode a QR code on the
panel (OpenCV's `QRCodeDetector`) or "datamatrix" to decode a Data Matrix (zxing-cpp, a self-contained
wheel: OpenCV's Python wheels have no Data Matrix decoder). The code's text is the panel id, or is
parsed by `code_pattern` (same groups) when the code holds more than the serial. A code not found or not
decodable gives no value; so does a decoder error or a decoder not installed (logged as a warning, the
latter once): never a failed inspection.

Every road resolves a board's `Trace` with `resolve_trace`: the values given with the board (HTTP
form fields) win, then the code on the panel, then the file name; the line is the service's own name
unless given. A value read that is not a safe id is dropped with a warning: a board is never refused
for its label.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np

from aoi.schema import SchemaError, Trace, check_trace_id

log = logging.getLogger(__name__)

PATTERN_MAX_CHARS = 200
GROUP_FIELDS = {"lot": "lot", "panel": "panel_id"}  # named group -> Trace field
CODE_KINDS = ("qr", "datamatrix")
SETTING_KEYS = ("file_pattern", "code", "code_pattern")
_NAME_MAX_CHARS = 500  # file names and code texts searched; longer ones are cut (a regex on a megabyte is slow)


def compile_pattern(pattern: Any, where: str) -> re.Pattern[str]:
    """A traceability pattern: compiles, at most 200 characters, named groups only from `lot`, `panel`
    and at least one of them. SchemaError naming `where` otherwise."""
    if not isinstance(pattern, str) or not pattern:
        raise SchemaError(f"{where} must be a non-empty regular expression, got {repr(pattern)[:80]}")
    if len(pattern) > PATTERN_MAX_CHARS:
        raise SchemaError(f"{where} is {len(pattern)} characters long; the limit is {PATTERN_MAX_CHARS}")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise SchemaError(f"{where} {pattern!r} is not a valid regular expression: {exc}") from None
    except (OverflowError, RecursionError, ValueError) as exc:  # huge repeat counts, deep nesting
        raise SchemaError(f"{where} {pattern!r} is not a usable regular expression: {exc}") from None
    unknown = sorted(set(compiled.groupindex) - set(GROUP_FIELDS))
    if unknown:
        raise SchemaError(
            f"{where} has unknown group name(s) {', '.join(unknown)}; use (?P<lot>...) and/or (?P<panel>...)"
        )
    if not compiled.groupindex:
        raise SchemaError(
            f"{where} {pattern!r} names no group: mark the lot with (?P<lot>...) and/or the panel with (?P<panel>...)"
        )
    return compiled


@dataclass(frozen=True)
class TraceSettings:
    """A product's traceability setup; validated when built, `to_dict()` is what the API takes and shows."""

    file_pattern: str | None = None
    code: str | None = None  # "qr" / "datamatrix": read that code on the panel (CODE_KINDS)
    code_pattern: str | None = None
    _compiled: dict[str, re.Pattern[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.file_pattern is not None:
            self._compiled["file"] = compile_pattern(self.file_pattern, "trace.file_pattern")
        if self.code is not None and self.code not in CODE_KINDS:
            raise SchemaError(
                f"trace.code must be one of {', '.join(CODE_KINDS)} (or null), got {repr(self.code)[:80]}"
            )
        if self.code_pattern is not None:
            if self.code is None:
                raise SchemaError(
                    f"trace.code_pattern needs trace.code (one of {', '.join(CODE_KINDS)}): it parses the code's text"
                )
            self._compiled["code"] = compile_pattern(self.code_pattern, "trace.code_pattern")

    @property
    def is_empty(self) -> bool:
        return self.file_pattern is None and self.code is None

    def to_dict(self) -> dict[str, str | None]:
        return {"file_pattern": self.file_pattern, "code": self.code, "code_pattern": self.code_pattern}

    @classmethod
    def from_dict(cls, data: Any) -> TraceSettings:
        """From the `to_dict()` shape; unknown keys, wrong types and bad patterns raise SchemaError."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"trace must be an object with {', '.join(SETTING_KEYS)}, got a {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in SETTING_KEYS)
        if unknown:
            raise SchemaError(
                f"trace has unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(SETTING_KEYS)}"
            )
        values = {key: data.get(key) for key in SETTING_KEYS}
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise SchemaError(f"trace.{key} must be a string or null, got {repr(value)[:80]}")
        return cls(**values)

    def from_file_name(self, image_name: str) -> Trace:
        """Lot and panel from a file name (folders and extension dropped); an empty Trace when no match."""
        pattern = self._compiled.get("file")
        if pattern is None or not image_name:
            return Trace()
        stem = PurePath(image_name.replace("\\", "/")).stem
        return _groups_to_trace(pattern, stem, f"file name {stem!r}")

    def from_code_text(self, text: str) -> Trace:
        """Lot and panel from a decoded code: parsed by `code_pattern`, else the whole text is the panel id."""
        pattern = self._compiled.get("code")
        if pattern is None:
            return _checked(Trace, "panel_id", text.strip()[:_NAME_MAX_CHARS], f"code {text[:80]!r}")
        return _groups_to_trace(pattern, text, f"code {text[:80]!r}")


def _checked(build: type[Trace], name: str, value: str, source: str) -> Trace:
    try:
        check_trace_id(value, name)
    except SchemaError as exc:
        log.warning("traceability: %s from %s dropped: %s", name, source, exc)
        return build()
    return build(**{name: value})


def _groups_to_trace(pattern: re.Pattern[str], text: str, source: str) -> Trace:
    match = pattern.search(text[:_NAME_MAX_CHARS])
    if match is None:
        log.info("traceability: %s does not match %r", source, pattern.pattern)
        return Trace()
    found = Trace()
    for group, name in GROUP_FIELDS.items():
        value = match.groupdict().get(group)
        if value:
            found = found.or_else(_checked(Trace, name, value, source))
    return found


def read_qr_code(image: np.ndarray) -> str | None:
    """The text of a QR code on the panel, or None when none is found or decoded."""
    import cv2  # OpenCV only when a product asks for its code to be read

    try:
        text, _points, _straight = cv2.QRCodeDetector().detectAndDecode(image)
    except cv2.error as exc:
        log.warning("traceability: QR code detection failed: %s", exc)
        return None
    return text or None


_warned: set[str] = set()  # warnings logged once per process (a missing decoder would warn on every board)


def _warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def read_datamatrix_code(image: np.ndarray) -> str | None:
    """The text of a Data Matrix (ECC200) on the panel, or None when none is found or decoded, or when
    zxing-cpp is not installed (warned once).

    Decodes the image as given, 8-bit grayscale or BGR, for Data Matrix only; zxing-cpp also scans its own
    downscaled copies (a code with coarse modules on a large scan) and rotations. No time limit exists in
    zxing-cpp; its cost is bounded by the image: ~0.2 s for 8192x8192 and ~2 s for the largest accepted
    panel (16384x16384) with no code on it, less than the QR path on the same image.
    """
    try:
        import zxingcpp  # only when a product asks for a Data Matrix to be read
    except ImportError as exc:
        _warn_once("zxingcpp", "traceability: no Data Matrix decoder (pip install zxing-cpp): %s", exc)
        return None
    try:
        formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.DataMatrix)
        found = zxingcpp.read_barcode(np.ascontiguousarray(image), formats=formats)
    except Exception as exc:  # a decoder's complaint about one image never fails its inspection
        log.warning("traceability: Data Matrix detection failed: %s", exc)
        return None
    if found is None or not found.valid:
        return None
    return found.text or None


CODE_READERS = {"qr": read_qr_code, "datamatrix": read_datamatrix_code}  # one per CODE_KINDS entry


def resolve_trace(
    given: Trace,
    settings: TraceSettings | None,
    image_name: str | None,
    image: np.ndarray | None,
    line: str | None,
) -> Trace:
    """A board's trace: `given` first, then the panel's code, then the file name, then the service's `line`.

    The code is read only when the product asks for it and the given values leave lot or panel unknown.
    """
    trace = given
    if settings is not None:
        if settings.code is not None and image is not None and (trace.lot is None or trace.panel_id is None):
            text = CODE_READERS[settings.code](image)
            if text is not None:
                trace = trace.or_else(settings.from_code_text(text))
        if image_name:
            trace = trace.or_else(settings.from_file_name(image_name))
    if line is not None:
        trace = trace.or_else(Trace(line=line))
    return trace
