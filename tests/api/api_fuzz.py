"""Fuzz every operation of the service's OpenAPI schema with schemathesis, in process (ASGI, no network).

Shared by tests/api/test_api_fuzz.py (a few examples per operation, in the suite) and
scripts/fuzz_api.py (10,000+ requests per database). The app runs with the service tests' fake
inspector, so the time goes to the HTTP, validation and storage paths, not to the engine.

Random values alone rarely get past the first check (a random string is no product id, random bytes
are no image), so three requests in four are nudged towards the service's real vocabulary: the ids
of a seeded product, inspection and defect, a decodable PNG of the right size, a free product name,
rules and capture JSON built from their real keys with hostile values. Each nudged value is left as
schemathesis made it one time in four, so most requests carry one or two bad values, not ten.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from aoi.pipeline.capture import CANDIDATE_SETTINGS, REGISTRATION_SETTINGS
from aoi.schema import DefectType

BOARD_PX = 96  # small boards: the fake inspector is fast, the PNG codec is the cost

_TYPE_RULE_KEYS = ("max_count", "min_size_um", "max")
_HOSTILE_NUMBERS = (0, -1, 1, 2, 0.5, 1e308, -1e308, 2**63, -(2**63), 10**30, 1e-320, 10**400)


def board_png(size_px: int = BOARD_PX, short_at: int | None = None) -> bytes:
    """A PNG of horizontal copper traces; `short_at`: a bright square there (a defect for the fake)."""
    board = np.zeros((size_px, size_px), np.uint8)
    board[8::16, :] = 200
    board[9::16, :] = 200
    if short_at is not None:
        board[short_at : short_at + 6, short_at : short_at + 6] = 255
    ok, data = cv2.imencode(".png", board)
    if not ok:
        raise RuntimeError("png encode failed")
    return bytes(data.tobytes())


@dataclass
class Known:
    """Records the fuzzer can point at: a product (by id or name), an inspection and its defects."""

    product_id: str
    product_name: str
    inspection_id: str
    defect_ids: list[str]
    template_png: bytes
    defect_png: bytes


def seed_records(client: TestClient, headers: dict[str, str]) -> Known:
    """One product and one inspection with a defect, made through the API."""
    template, defective = board_png(), board_png(short_at=40)
    r = client.post(
        "/api/v1/products",
        data={"name": "fuzz-board", "px_per_mm": "20"},
        files={"template": ("t.png", template, "image/png")},
        headers=headers,
    )
    if r.status_code != 201:
        raise RuntimeError(f"seeding the product failed: {r.status_code} {r.text}")
    product = r.json()
    r = client.post(
        "/api/v1/inspections",
        data={"product": product["id"]},
        files={"image": ("seed.png", defective, "image/png")},
        headers=headers,
    )
    if r.status_code != 201 or not r.json()["defects"]:
        raise RuntimeError(f"seeding the inspection failed: {r.status_code} {r.text}")
    inspection = r.json()
    defect_ids = [d["id"] for d in inspection["defects"]]
    return Known(product["id"], product["name"], inspection["id"], defect_ids, template, defective)


@dataclass(frozen=True)
class Finding:
    """A response the fuzzer flags: a 5xx, or a body that breaks the documented schema."""

    kind: str  # "server_error" or "schema"
    operation: str
    status: int
    detail: str
    curl: str


@dataclass
class FuzzReport:
    label: str
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: dict[str, Counter[int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def schema_violations(self) -> int:
        return sum(1 for f in self.findings if f.kind == "schema")

    def summary(self) -> dict[str, Any]:
        return {
            "database": self.label,
            "requests": self.requests,
            "5xx": self.server_errors,
            "schema_violations": self.schema_violations,
            "seconds": round(self.seconds, 1),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


# --- nudges towards real values ----------------------------------------------------------------------


def _hostile_json() -> st.SearchStrategy[Any]:
    """Any JSON value, weighted towards the numbers that broke parsers before (huge, tiny, NaN, 2^63)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(_HOSTILE_NUMBERS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(),
        st.text(max_size=12),
        st.sampled_from([t.value for t in DefectType]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8,
    )


def _mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` three times in four: a request with one bad value gets further than one with five."""
    return st.one_of(valid, valid, valid, hostile)


def _type_rule() -> st.SearchStrategy[Any]:
    valid = st.fixed_dictionaries(
        {},
        optional={
            "max_count": st.integers(0, 5),
            "min_size_um": st.floats(0, 500, allow_nan=False),
        },
    )
    hostile = st.dictionaries(st.sampled_from(_TYPE_RULE_KEYS), _hostile_json(), max_size=3) | _hostile_json()
    return _mostly(valid, hostile)


def rules_json() -> st.SearchStrategy[str]:
    """`rules` form values: the VerdictRules shape, mostly valid, some values (or keys) hostile."""
    type_names = _mostly(st.sampled_from([t.value for t in DefectType]), st.sampled_from(["pinhole", "PIN_HOLE", "x"]))
    rules = st.fixed_dictionaries(
        {},
        optional={
            "per_type": _mostly(st.dictionaries(type_names, _type_rule(), max_size=3), _hostile_json()),
            "default": _type_rule(),
            "min_confidence": _mostly(st.floats(0, 1), _hostile_json()),
            "unknown": _hostile_json(),
        },
    )
    return rules.map(lambda data: json.dumps(data, allow_nan=True))


def capture_json() -> st.SearchStrategy[str]:
    """`capture` form values: known sections and settings with any JSON value, and unknown keys."""

    def section(keys: list[str]) -> st.SearchStrategy[Any]:
        return _mostly(
            st.dictionaries(st.sampled_from([*keys, "unknown"]), _hostile_json(), max_size=3), _hostile_json()
        )

    capture = st.fixed_dictionaries(
        {},
        optional={
            "candidates": section(list(CANDIDATE_SETTINGS)),
            "registration": section(list(REGISTRATION_SETTINGS)),
            "good_captures": _hostile_json(),
            "other": _hostile_json(),
        },
    )
    return capture.map(lambda data: json.dumps(data, allow_nan=True))


HOSTILE_NAMES = ("../../x", "a/b", ".", "..", "done", "FAILED", "a\x00b", "a\nb", "Fuzz-Board", "x" * 65, "-x", " ")
HOSTILE_FLOATS = (0.5, 1e308, -1.0, 2.0**63, 1e-320, 100_000.5)


def nudge(case: Any, data: st.DataObject, known: Known, counter: Callable[[], int]) -> None:
    """Point most requests at real records and make most of their body valid (see the module docstring)."""
    if data.draw(st.integers(0, 3), "keep every generated value") == 3:
        return

    def pick(*choices: Any) -> Any:
        return data.draw(st.sampled_from(choices))

    def sometimes() -> bool:  # one value in four stays as generated (or hostile)
        return data.draw(st.integers(0, 3)) == 3

    path = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    if "product_id" in path and not sometimes():
        path["product_id"] = pick(known.product_id, known.product_name)
    if "inspection_id" in path and not sometimes():
        path["inspection_id"] = known.inspection_id
    if "defect_id" in path and not sometimes():
        path["defect_id"] = pick(*known.defect_ids)
    query = case.query if isinstance(case.query, dict) else None
    if query is not None and "product" in query and not sometimes():
        query["product"] = pick(known.product_id, known.product_name)
    body = case.body
    if not isinstance(body, dict):
        return
    endpoint = case.operation.path
    if endpoint.endswith("/products"):
        body["name"] = data.draw(st.builds(lambda: f"fz-{counter()}")) if not sometimes() else pick(*HOSTILE_NAMES)
        if not sometimes():
            body["px_per_mm"] = pick(20, 1, 100_000, 47.5)
        elif data.draw(st.booleans()):
            body["px_per_mm"] = pick(*HOSTILE_FLOATS)
        body["template"] = known.template_png if not sometimes() else pick(known.defect_png, body.get("template", b""))
        body["rules"] = data.draw(rules_json()) if not sometimes() else body.get("rules")
        body["capture"] = None if not sometimes() else data.draw(capture_json())
        for name in ("rules", "capture"):
            if body[name] is None:
                body.pop(name)
    elif endpoint.endswith("/inspections"):
        if not sometimes():
            body["image"] = pick(known.defect_png, known.template_png)
        if not sometimes():
            body["product"] = pick(known.product_name, known.product_id)
            body.pop("template", None)
        elif "template" in body and not sometimes():
            body["template"] = known.template_png
        if "px_per_mm" in body and not sometimes():
            body["px_per_mm"] = pick(20, 1, 100_000) if not sometimes() else pick(*HOSTILE_FLOATS)
    elif endpoint.endswith("/review") and not sometimes():
        body["decision"] = pick("confirm", "false_call", "reclassify")
        if body["decision"] == "reclassify" and not sometimes():
            body["type"] = pick(*(t.value for t in DefectType), "pinhole", "warp")
        elif not sometimes():
            body.pop("type", None)
        if not sometimes():
            body.pop("reviewer", None)


# --- the run ---------------------------------------------------------------------------------------


def fuzz(
    app: FastAPI,
    headers: dict[str, str],
    *,
    label: str,
    examples_per_operation: int,
    min_requests: int = 0,
    random_seed: int = 0,
    validate_schema: bool = True,
    progress: Callable[[FuzzReport], None] | None = None,
) -> FuzzReport:
    """Send schemathesis-generated requests (valid and invalid by the schema) to every operation of `app`.

    One pass asks for `examples_per_operation` examples per operation and generation mode (positive,
    negative); passes with the next seeds follow until `min_requests` were sent. `headers` (an admin
    key) go with seven requests in eight, so writes get past authentication; the eighth keeps what
    schemathesis made (or nothing). Every 5xx, and every response body that breaks its documented
    schema, is a `Finding`. `progress` is called after each operation.
    """
    report = FuzzReport(label)
    serial = iter(range(10**9))
    with TestClient(app, raise_server_exceptions=False) as client:  # runs the app's lifespan
        known = seed_records(client, headers)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        session = asgi.get_client(app)
        run = _Run(session, headers, known, report, validate_schema, lambda: next(serial))
        started = time.perf_counter()
        pass_no = 0
        while pass_no == 0 or report.requests < min_requests:
            for operation in operations:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    run.operation(operation, mode, examples_per_operation, random_seed + pass_no)
                report.seconds = time.perf_counter() - started
                if progress is not None:
                    progress(report)
            pass_no += 1
    return report


@dataclass
class _Run:
    session: asgi.ASGIClient
    headers: dict[str, str]
    known: Known
    report: FuzzReport
    validate_schema: bool
    counter: Callable[[], int]

    def operation(self, operation: Any, mode: GenerationMode, max_examples: int, random_seed: int) -> None:
        @seed(random_seed)
        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def run(case: Any, data: st.DataObject) -> None:
            nudge(case, data, self.known, self.counter)
            own_auth = data.draw(st.integers(0, 7), "generated auth") != 7
            self.send(case, self.headers if own_auth else {})

        with contextlib.suppress(Unsatisfiable):  # NEGATIVE mode of an operation without input
            run()

    def send(self, case: Any, headers: dict[str, str]) -> None:
        """The request as schemathesis serialises it, through one ASGI session, with `headers` added."""
        label = f"{case.operation.method.upper()} {case.operation.path}"
        kwargs = case.as_transport_kwargs(base_url=f"http://{asgi.HOST}")
        kwargs["headers"].update(headers)  # after serialising: a negative case's removals do not drop them
        response = self.session.request(**kwargs)
        report = self.report
        report.requests += 1
        report.statuses[response.status_code] += 1
        report.per_operation.setdefault(label, Counter())[response.status_code] += 1
        if response.status_code >= 500:
            curl = case.as_curl_command(headers)
            report.findings.append(Finding("server_error", label, response.status_code, response.text[:500], curl))
        elif self.validate_schema:
            try:
                case.validate_response(response, checks=[response_schema_conformance, content_type_conformance])
            except FailureGroup as exc:  # the message says what broke, with the offending value
                report.findings.append(Finding("schema", label, response.status_code, str(exc)[:800], ""))
