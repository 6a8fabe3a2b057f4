"""Lot and shift reports checked against a hand-built line: exact yield, Pareto, heat map and false-call rate,
as JSON, CSV (parsed back) and printable HTML, through the API (read scope) and `aoi report` (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from tests.support.service import FakeInspector, paint_board
from typer.testing import CliRunner

from aoi.api import ServiceSettings, create_app
from aoi.cli import app as cli_app
from aoi.reports import build_report, lot_scope, render_csv, render_html, report_dict
from aoi.schema import Defect, DefectType, InspectionResult, Trace, Verdict
from aoi.storage import Storage
from aoi.storage.inspections import InspectionRepository
from aoi.storage.keys import Scope, create_api_key
from aoi.storage.models import InspectionRow
from aoi.storage.records import ReviewDecision
from aoi.storage.reports import ReviewFigures

WH = (640, 640)

# (image id, lot, panel, created at (UTC), defects as (type, box), reviews per defect: (decision, new type) or None)
BOARDS = [
    ("b1", "L100", "P1", datetime(2026, 3, 1, 21, 0, tzinfo=UTC), [], []),
    ("b2", "L100", "P2", datetime(2026, 3, 2, 4, 59, tzinfo=UTC), [], []),
    (
        "b3",
        "L100",
        "P3",
        datetime(2026, 3, 2, 5, 0, tzinfo=UTC),
        [("short", (10, 10, 20, 20)), ("open", (630, 630, 638, 638))],
        [(ReviewDecision.CONFIRM, None), (ReviewDecision.FALSE_CALL, None)],
    ),
    (
        "b4",
        "L100",
        "P4",
        datetime(2026, 3, 1, 14, 0, tzinfo=UTC),
        [("short", (300, 300, 316, 312)), ("short", (320, 10, 330, 20))],
        [(ReviewDecision.RECLASSIFY, DefectType.COPPER), None],
    ),
    (  # panel P4 inspected again: one more inspection, not one more panel
        "b5",
        "L100",
        "P4",
        datetime(2026, 3, 1, 20, 59, tzinfo=UTC),
        [("spur", (100, 500, 110, 510))],
        [(ReviewDecision.FALSE_CALL, None)],
    ),
    ("x1", "L200", "Q1", datetime(2026, 3, 1, 15, 0, tzinfo=UTC), [("short", (10, 10, 20, 20))], [None]),
]
# Shifts in Seoul (UTC+9): C of 03-01 is 13:00 to 21:00 UTC on 03-01, A of 03-02 is 21:00 on 03-01 to 05:00.
SHIFTS = "A=06-14,B=14-22,C=22-06"


@dataclass
class Line:
    client: TestClient
    storage: Storage
    reader: str
    station: str

    def get(self, path: str, key: str | None = None, **params: str) -> object:
        headers = {"Authorization": f"Bearer {key or self.reader}"}
        return self.client.get(path, params=params, headers=headers)


def seed(storage: Storage) -> None:
    recorder = storage.recorder
    for image_id, lot, panel, when, defects, reviews in BOARDS:
        result = InspectionResult(
            image_id=image_id,
            image_size_wh=WH,
            defects=tuple(Defect(t, 0.9, box) for t, box in defects),  # type: ignore[arg-type]
            verdict=Verdict.FAIL if defects else Verdict.PASS,
            px_per_mm=20.0,
            model_version="m-7",
            trace=Trace(lot=lot, panel_id=panel, line="SMT-1"),
        )
        stored = recorder.record(result, paint_board())
        with storage.db.transaction() as session:
            session.execute(update(InspectionRow).where(InspectionRow.id == stored.id).values(created_at=when))
            repo = InspectionRepository(session)
            for defect, review in zip(stored.result.defects, reviews, strict=True):
                if review is not None:
                    repo.review_defect(defect.id or "", review[0], "kim" if image_id != "b5" else "lee", review[1])


@pytest.fixture
def line(storage: Storage) -> Iterator[Line]:
    seed(storage)
    settings = ServiceSettings(
        data_dir=storage.data_dir, serve_dashboard=False, shifts=SHIFTS, shift_timezone="Asia/Seoul"
    )
    app = create_app(settings, inspector=FakeInspector(), storage=storage)
    with storage.db.transaction() as session:
        reader = create_api_key(session, "screen", {Scope.READ})
        station = create_api_key(session, "station", {Scope.INSPECT})
    with TestClient(app) as client:
        yield Line(client, storage, reader, station)


def test_lot_report_figures_match_the_hand_count(line: Line) -> None:
    r = line.get("/api/v1/reports/lot/L100", format="json")
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    report = r.json()  # type: ignore[attr-defined]
    assert report["summary"] == {
        "inspections": 5,
        "passed": 2,
        "failed": 3,
        "yield": 0.4,
        "panels": 4,
        "defects_reported": 5,
        "defects_counted": 3,  # 5 reported, 2 false calls
        "reviewed": 4,
        "pending": 1,
        "confirmed": 1,
        "reclassified": 1,
        "false_calls": 2,
        "false_call_rate": 0.5,  # 2 of 4 reviewed
        "false_calls_per_board": 0.4,
        "review_coverage": 0.8,
        "escapes": 0,
        "escape_rate": 0.0,  # of the 2 real defects found (1 confirmed, 1 reclassified), none added by an operator
    }
    assert "escapes / (confirmed + reclassified + escapes)" in report["escapes_note"]
    # After review: short = b3's confirmed + b4's pending one; b4's first short is copper now; open and spur
    # were false calls (reported, not counted).
    assert report["pareto"] == [
        {"type": "short", "count": 2, "reported": 3, "false_calls": 0, "escapes": 0},
        {"type": "copper", "count": 1, "reported": 0, "false_calls": 0, "escapes": 0},
        {"type": "open", "count": 0, "reported": 1, "false_calls": 1, "escapes": 0},
        {"type": "spur", "count": 0, "reported": 1, "false_calls": 1, "escapes": 0},
    ]
    heat = report["heat_map"]
    assert (heat["cols"], heat["rows"], heat["board_wh"]) == (10, 10, [640, 640])
    cells = {(r, c): n for r, row in enumerate(heat["counts"]) for c, n in enumerate(row) if n}
    assert cells == {(0, 0): 1, (4, 4): 1, (0, 5): 1}  # b3's short, b4's copper, b4's short
    assert report["trace"] == {
        "lots": ["L100"],
        "lines": ["SMT-1"],
        "products": [],
        "model_versions": ["m-7"],
        "reviewers": ["kim", "lee"],
    }
    assert [b["image_id"] for b in report["failed_boards"]] == ["b4", "b5", "b3"]  # oldest first
    assert report["failed_boards_total"] == 3
    assert report["first_inspection_at"] == "2026-03-01T14:00:00+00:00"


def test_lot_report_as_csv_parses_back(line: Line) -> None:
    r = line.get("/api/v1/reports/lot/L100", format="csv")
    assert r.status_code == 200  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("text/csv")  # type: ignore[attr-defined]
    assert 'filename="aoi-lot-L100.csv"' in r.headers["content-disposition"]  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(r.text)))  # type: ignore[attr-defined]
    assert set(rows[0]) == {"section", "name", "value"}
    figures = {(row["section"], row["name"]): row["value"] for row in rows}
    assert figures[("summary", "inspections")] == "5"
    assert figures[("summary", "yield")] == "0.4"
    assert figures[("summary", "false_call_rate")] == "0.5"
    assert figures[("summary", "escape_rate")] == "0.0"
    assert figures[("pareto", "short")] == "2" and figures[("pareto", "copper")] == "1"
    assert figures[("pareto_false_calls", "open")] == "1"
    assert figures[("heat_map", "r4c4")] == "1" and figures[("heat_map", "r9c9")] == "0"
    assert sum(int(v) for (section, _), v in figures.items() if section == "heat_map") == 3
    assert [row["value"] for row in rows if row["section"] == "trace" and row["name"] == "reviewer"] == ["kim", "lee"]


def test_lot_report_as_html_shows_the_figures(line: Line) -> None:
    r = line.get("/api/v1/reports/lot/L100")
    assert r.status_code == 200  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("text/html")  # type: ignore[attr-defined]
    page = r.text  # type: ignore[attr-defined]
    assert "<h1>Lot report: L100</h1>" in page
    assert '<div class="v">40.0%</div><div class="k">Yield</div>' in page
    assert '<div class="v">50.0%</div><div class="k">False-call rate (of reviewed)</div>' in page
    assert '<tr data-type="short"><td>short</td><td class="n">2</td>' in page
    assert 'data-row="4" data-col="4" data-count="1"' in page and 'data-row="0" data-col="0" data-count="1"' in page
    assert "Escapes are defects the machine missed that operators added" in page
    assert "<script" not in page
    korean = line.get("/api/v1/reports/lot/L100", lang="ko").text  # type: ignore[attr-defined]
    assert '<html lang="ko">' in korean and "로트 보고서: L100" in korean
    assert '<tr data-type="short"><td>단락</td>' in korean


def test_shift_report_counts_the_shifts_hours_in_the_plants_zone(line: Line) -> None:
    """C of 03-01 runs 22:00 to 06:00 Seoul: b4 (23:00) and b5 (05:59) and x1 (other lot); not b1 (06:00)."""
    r = line.get("/api/v1/reports/shift", date="2026-03-01", shift="C", format="json")
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    report = r.json()  # type: ignore[attr-defined]
    assert report["scope"]["since"] == "2026-03-01T13:00:00+00:00"
    assert report["scope"]["until"] == "2026-03-01T21:00:00+00:00"
    assert report["summary"]["inspections"] == 3 and report["trace"]["lots"] == ["L100", "L200"]
    morning = line.get("/api/v1/reports/shift", date="2026-03-02", shift="A", format="json").json()  # type: ignore[attr-defined]
    assert morning["summary"]["inspections"] == 2 and morning["summary"]["yield"] == 1.0  # b1 and b2
    page = line.get("/api/v1/reports/shift", date="2026-03-02", shift="B").text  # type: ignore[attr-defined]
    assert "Shift report: 2026-03-02 · shift B (14:00-22:00)" in page and "b3" in page


def test_report_requests_that_cannot_be_answered(line: Line) -> None:
    def status(path: str, key: str | None = None, **params: str) -> int:
        return int(line.get(path, key, **params).status_code)  # type: ignore[attr-defined]

    assert line.client.get("/api/v1/reports/lot/L100").status_code == 401  # reads need a key
    assert status("/api/v1/reports/lot/L100", line.station) == 403  # ... with the read scope
    assert status("/api/v1/reports/lot/L999") == 404
    assert status("/api/v1/reports/lot/L 1") == 422
    assert status("/api/v1/reports/lot/L100", format="pdf") == 422
    assert status("/api/v1/reports/lot/L100", lang="fr") == 422
    assert status("/api/v1/reports/shift", date="2026-03-01", shift="D") == 422
    assert status("/api/v1/reports/shift", date="2026-03-01") == 422
    assert status("/api/v1/reports/shift", shift="A") == 422
    assert status("/api/v1/reports/shift", date="yesterday", shift="A") == 422


def test_aoi_report_writes_the_file(line: Line, tmp_path: Path, database_url: str | None) -> None:
    out = tmp_path / "lot.csv"
    url = ["--database-url", database_url] if database_url else []
    args = ["report", "--lot", "L100", "--data-dir", str(line.storage.data_dir), *url, "--format", "csv"]
    result = CliRunner().invoke(cli_app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 inspections, yield 40.0%" in result.output
    figures = {(r["section"], r["name"]): r["value"] for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert figures[("summary", "false_call_rate")] == "0.5" and figures[("pareto", "short")] == "2"

    page = tmp_path / "shift.html"
    shift = ["--shift", "C", "--date", "2026-03-01", "--shifts", SHIFTS, "--shift-timezone", "Asia/Seoul"]
    data = ["--data-dir", str(line.storage.data_dir), *url]
    result = CliRunner().invoke(cli_app, ["report", *shift, *data, "--out", str(page), "--lang", "ko"])
    assert result.exit_code == 0, result.output
    assert "교대 보고서: 2026-03-01" in page.read_text(encoding="utf-8")

    missing = CliRunner().invoke(cli_app, ["report", "--lot", "L999", *data, "--out", str(tmp_path / "x.html")])
    assert missing.exit_code == 2 and "no inspection of lot 'L999'" in missing.output
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"shifts": "06-14,13-20"}, "overlap"),
        ({"shifts": "A=06-14,A=14-22"}, "must differ"),
        ({"shifts": "6 to 14"}, "is not [NAME=]HH[:MM]-HH[:MM]"),
        ({"shifts": "06-25"}, "not a time of day"),
        ({"shift_timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_a_shift_plan_that_cannot_be_used_stops_the_service_at_start(options: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        ServiceSettings(**options)  # type: ignore[arg-type]


def _escape_lot(storage: Storage) -> str:
    """Lot L300: one board with 3 confirmed, 1 reclassified and 1 false-called engine defect, one clean board;
    returns the clean board's id (where the operator will add the defect the machine missed)."""
    boxes = [(10, 10, 20, 20), (40, 40, 50, 50), (70, 70, 80, 80), (100, 100, 110, 110), (130, 130, 140, 140)]
    decisions = [ReviewDecision.CONFIRM] * 3 + [ReviewDecision.RECLASSIFY, ReviewDecision.FALSE_CALL]
    ids = []
    for image_id, defects in (("e1", boxes), ("e2", [])):
        result = InspectionResult(
            image_id=image_id,
            image_size_wh=WH,
            defects=tuple(Defect(DefectType.SHORT, 0.9, box) for box in defects),  # type: ignore[arg-type]
            verdict=Verdict.FAIL if defects else Verdict.PASS,
            px_per_mm=20.0,
            model_version="m-7",
            trace=Trace(lot="L300", panel_id=f"P-{image_id}", line="SMT-1"),
        )
        stored = storage.recorder.record(result, paint_board())
        ids.append(stored.id)
        with storage.db.transaction() as session:
            repo = InspectionRepository(session)
            for defect, decision in zip(stored.result.defects, decisions[: len(defects)], strict=True):
                new_type = DefectType.SPUR if decision is ReviewDecision.RECLASSIFY else None
                repo.review_defect(defect.id or "", decision, "kim", new_type)
    return ids[1]


def test_escape_rate_counts_the_defects_operators_added(storage: Storage, tmp_path: Path) -> None:
    """3 confirmed + 1 reclassified + 1 operator-added: escape rate 1/5; the false-call rate (1 of the 5 the
    machine reported and operators reviewed) is what it was before the escape was added."""
    clean_id = _escape_lot(storage)
    scope = lot_scope("L300")
    before = build_report(storage, scope)
    assert before.escape_rate == 0.0 and before.false_call_rate == 0.2
    with storage.db.transaction() as session:
        added = InspectionRepository(session).add_missed_defect(clean_id, DefectType.OPEN, (320, 320, 330, 330), "lee")
    assert added is not None

    report = build_report(storage, scope)
    assert report.reviews == ReviewFigures(defects=5, confirmed=3, false_calls=1, reclassified=1, escapes=1)
    assert report.escape_rate == 0.2 and report.false_call_rate == before.false_call_rate == 0.2
    assert (report.inspections.total, report.inspections.failed) == (2, 2)  # the clean board fails now
    summary = report_dict(report)["summary"]
    assert (summary["defects_reported"], summary["defects_counted"], summary["escapes"]) == (5, 5, 1)
    assert (summary["confirmed"], summary["reviewed"], summary["pending"]) == (3, 5, 0)
    assert summary["escape_rate"] == 0.2 and summary["false_call_rate"] == 0.2
    pareto = {row["type"]: row for row in report_dict(report)["pareto"]}
    assert pareto["open"] == {"type": "open", "count": 1, "reported": 0, "false_calls": 0, "escapes": 1}
    assert pareto["short"] == {"type": "short", "count": 3, "reported": 5, "false_calls": 1, "escapes": 0}
    assert report.heat_map.counts[5][5] == 1  # the escape's centre (325, 325) is on the map too

    figures = {(r["section"], r["name"]): r["value"] for r in csv.DictReader(io.StringIO(render_csv(report)))}
    assert figures[("summary", "escape_rate")] == "0.2" and figures[("summary", "escapes")] == "1"
    assert figures[("pareto_escapes", "open")] == "1"
    page = render_html(report)
    assert '<div class="v">20.0%</div><div class="k">Escape rate (of real defects)</div>' in page
    assert 'data-key="escapes"><div class="v">1</div>' in page
    assert '<div class="v">20.0%</div><div class="k">유출률 (실제 결함 대비)</div>' in render_html(report, "ko")

    # Withdrawn (marked a false call), an added defect is no escape and no false call of the machine.
    with storage.db.transaction() as session:
        InspectionRepository(session).review_defect(added, ReviewDecision.FALSE_CALL, "lee")
    withdrawn = build_report(storage, scope)
    assert withdrawn.reviews.escapes == 0 and withdrawn.escape_rate == 0.0 and withdrawn.false_call_rate == 0.2

    out = tmp_path / "l300.json"
    args = ["report", "--lot", "L300", "--data-dir", str(storage.data_dir), "--format", "json", "--out", str(out)]
    if not storage.db.is_sqlite:
        args += ["--database-url", str(storage.db.engine.url.render_as_string(hide_password=False))]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert "0 escapes (escape rate 0.0%)" in result.output


def test_escape_rate_is_none_without_real_defects(storage: Storage) -> None:
    result = InspectionResult(
        image_id="z1", image_size_wh=WH, defects=(), verdict=Verdict.PASS, px_per_mm=20.0, model_version="m-7",
        trace=Trace(lot="L400"),
    )  # fmt: skip
    storage.recorder.record(result, paint_board())
    report = build_report(storage, lot_scope("L400"))
    assert report.escape_rate is None and report_dict(report)["summary"]["escape_rate"] is None
