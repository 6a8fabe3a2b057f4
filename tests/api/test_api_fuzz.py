"""Every operation of /openapi.json fuzzed by schemathesis, on SQLite and PostgreSQL: no request gets a 5xx,
and every documented response body matches its schema.

A few examples per operation here (a few hundred requests per database); scripts/fuzz_api.py runs
the same harness at 10,000+ requests per database.
"""

from __future__ import annotations

import json

import pytest
from tests.api.api_fuzz import FuzzReport, fuzz
from tests.support.service import FakeInspector

from aoi.api import ServiceSettings, create_app
from aoi.storage import Storage
from aoi.storage.keys import create_api_key

EXAMPLES_PER_OPERATION = 8  # x 2 modes x 13 operations: about 200 requests, 10-20 s per database


def _explain(report: FuzzReport) -> str:
    lines = [json.dumps(report.summary())]
    for finding in report.findings[:5]:
        lines.append(f"{finding.kind} {finding.status} {finding.operation}: {finding.detail}\n  {finding.curl}")
    return "\n".join(lines)


@pytest.mark.timeout(300)
def test_no_request_of_the_fuzzer_gets_a_5xx_or_breaks_the_schema(storage: Storage, backend: str) -> None:
    settings = ServiceSettings(data_dir=storage.data_dir, max_upload_bytes=2_000_000, serve_dashboard=False)
    app = create_app(settings, inspector=FakeInspector(), storage=storage)
    with storage.db.transaction() as session:
        key = create_api_key(session, label="fuzzer")  # every scope: admin writes are fuzzed too

    report = fuzz(app, {"Authorization": f"Bearer {key}"}, label=backend, examples_per_operation=EXAMPLES_PER_OPERATION)

    assert report.server_errors == 0 and not report.findings, _explain(report)
    assert len(report.per_operation) >= 13, sorted(report.per_operation)  # every operation was reached
    reached = {op: statuses for op, statuses in report.per_operation.items() if any(s < 300 for s in statuses)}
    for operation in ("POST /api/v1/products", "POST /api/v1/inspections", "POST /api/v1/defects/{defect_id}/review"):
        assert operation in reached, report.per_operation.get(operation)  # writes got past validation too
