"""Lot and shift reports for the operator's station: one set of figures (`storage.reports`), three forms.

JSON for programs, CSV (long format: one `section,name,value` row per figure) for spreadsheets, and a
self-contained printable HTML page (inline CSS and SVG: no script, no external file) with the yield,
the defect Pareto, a heat map of defect positions over the board, the review figures (false-call and
escape rates) and the failed boards. The HTTP API (`/api/v1/reports/...`) and `aoi report` both come
through `build_report`.
"""

from __future__ import annotations

import csv
import enum
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from html import escape
from typing import Any

from aoi.schema import TYPE_INFO, DefectType, check_trace_id
from aoi.shifts import ShiftPlan
from aoi.storage import Storage
from aoi.storage.inspections import InspectionFilter
from aoi.storage.reports import ESCAPES_NOTE, QualityReport, ReportScope, compute_report


class ReportFormat(enum.StrEnum):
    HTML = "html"
    CSV = "csv"
    JSON = "json"


MEDIA_TYPES = {
    ReportFormat.HTML: "text/html; charset=utf-8",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.JSON: "application/json",
}
LANGUAGES = ("en", "ko")


class EmptyReport(LookupError):
    """A lot with no inspection: most likely a typo, so no empty report is made for it."""


def lot_scope(lot: str, line: str | None = None) -> ReportScope:
    """Every inspection of `lot` (on `line` only, when given). SchemaError for an id no board can carry."""
    check_trace_id(lot, "lot")
    if line is not None:
        check_trace_id(line, "line")
    return ReportScope(kind="lot", title=lot, filters=InspectionFilter(lot=lot, line=line))


def shift_scope(plan: ShiftPlan, zone: tzinfo, day: date, shift: str, line: str | None = None) -> ReportScope:
    """The inspections of one shift (started on `day`, in the plant's `zone`). ShiftError for an unknown shift."""
    found = plan.get(shift)
    if line is not None:
        check_trace_id(line, "line")
    since, until = found.window(day, zone)
    return ReportScope(
        kind="shift",
        title=f"{day.isoformat()} {found.name}",
        filters=InspectionFilter(since=since, until=until, line=line),
        shift=found.name,
        shift_hours=found.hours_text,
        date=day.isoformat(),
    )


def build_report(storage: Storage, scope: ReportScope, now: datetime | None = None) -> QualityReport:
    with storage.db.session() as session:
        report = compute_report(session, scope, now or datetime.now(UTC))
    if scope.kind == "lot" and report.inspections.total == 0:
        raise EmptyReport(f"no inspection of lot {scope.title!r} is stored")
    return report


def render(report: QualityReport, fmt: ReportFormat, lang: str = "en", zone: tzinfo = UTC) -> str:
    if fmt is ReportFormat.CSV:
        return render_csv(report)
    if fmt is ReportFormat.HTML:
        return render_html(report, lang, zone)
    import json

    return json.dumps(report_dict(report), indent=2, ensure_ascii=False)


def file_name(report: QualityReport, fmt: ReportFormat) -> str:
    """A download name: `aoi-lot-L2405.csv`, `aoi-shift-2026-03-01-06-14.html`."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in report.scope.title.replace(" ", "-"))
    return f"aoi-{report.scope.kind}-{safe}.{fmt.value}"


# --- JSON and CSV ---------------------------------------------------------------------------------


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def report_dict(report: QualityReport) -> dict[str, Any]:
    scope = report.scope
    filters = scope.filters
    reviews = report.reviews
    return {
        "scope": {
            "kind": scope.kind,
            "title": scope.title,
            "lot": filters.lot,
            "line": filters.line,
            "date": scope.date,
            "shift": scope.shift,
            "shift_hours": scope.shift_hours,
            "since": _when(filters.since),
            "until": _when(filters.until),
        },
        "generated_at": _when(report.generated_at),
        "first_inspection_at": _when(report.first_at),
        "last_inspection_at": _when(report.last_at),
        "summary": {
            "inspections": report.inspections.total,
            "passed": report.inspections.passed,
            "failed": report.inspections.failed,
            "yield": _ratio(report.inspections.yield_ratio),
            "panels": report.panels,
            "defects_reported": reviews.defects,
            "defects_counted": report.defects_counted,
            "reviewed": reviews.reviewed,
            "pending": reviews.pending,
            "confirmed": reviews.confirmed,
            "reclassified": reviews.reclassified,
            "false_calls": reviews.false_calls,
            "false_call_rate": _ratio(report.false_call_rate),
            "false_calls_per_board": _ratio(report.false_calls_per_board),
            "review_coverage": _ratio(report.review_coverage),
            "escapes": reviews.escapes,
            "escape_rate": _ratio(report.escape_rate),
        },
        "escapes_note": ESCAPES_NOTE,
        "trace": {
            "lots": report.lots,
            "lines": report.lines,
            "products": report.products,
            "model_versions": report.model_versions,
            "reviewers": report.reviewers,
        },
        "pareto": [
            {
                "type": r.type,
                "count": r.count,
                "reported": r.reported,
                "false_calls": r.false_calls,
                "escapes": r.escapes,
            }
            for r in report.pareto
        ],
        "heat_map": {
            "cols": report.heat_map.cols,
            "rows": report.heat_map.rows,
            "board_wh": list(report.heat_map.board_wh) if report.heat_map.board_wh else None,
            "counts": [list(row) for row in report.heat_map.counts],
        },
        "failed_boards": [
            {
                "inspection_id": b.inspection_id,
                "created_at": _when(b.created_at),
                "image_id": b.image_id,
                "lot": b.lot,
                "panel_id": b.panel_id,
                "line": b.line,
                "defects": b.defects,
                "false_calls": b.false_calls,
            }
            for b in report.failed_boards
        ],
        "failed_boards_total": report.failed_boards_total,
    }


def render_csv(report: QualityReport) -> str:
    """Long format, `section,name,value`: one row per figure, so every spreadsheet and `csv` module reads it.

    Sections: scope, summary, trace (one row per lot, line, product, model version, reviewer), pareto
    (count after review), pareto_reported, pareto_false_calls, pareto_escapes, heat_map (`r<row>c<col>`,
    row 0 at the board's top), failed_board (inspection id -> defects)."""
    data = report_dict(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "name", "value"])

    def row(section: str, name: str, value: object) -> None:
        writer.writerow([section, name, "" if value is None else value])

    for name, value in data["scope"].items():
        row("scope", name, value)
    row("scope", "generated_at", data["generated_at"])
    row("scope", "first_inspection_at", data["first_inspection_at"])
    row("scope", "last_inspection_at", data["last_inspection_at"])
    for name, value in data["summary"].items():
        row("summary", name, value)
    singular = {"lots": "lot", "lines": "line", "products": "product", "model_versions": "model_version"}
    for key, values in data["trace"].items():
        for value in values:
            row("trace", singular.get(key, "reviewer"), value)
    for item in data["pareto"]:
        row("pareto", item["type"], item["count"])
    for item in data["pareto"]:
        row("pareto_reported", item["type"], item["reported"])
    for item in data["pareto"]:
        row("pareto_false_calls", item["type"], item["false_calls"])
    for item in data["pareto"]:
        row("pareto_escapes", item["type"], item["escapes"])
    for r, counts in enumerate(data["heat_map"]["counts"]):
        for c, count in enumerate(counts):
            row("heat_map", f"r{r}c{c}", count)
    for board in data["failed_boards"]:
        row("failed_board", board["inspection_id"], board["defects"])
    return out.getvalue()


# --- printable HTML ---------------------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "lot_report": "Lot report",
        "shift_report": "Shift report",
        "shift": "shift",
        "generated": "Generated",
        "period": "Inspected",
        "summary": "Summary",
        "inspections": "Inspections",
        "passed": "Passed",
        "failed": "Failed",
        "yield": "Yield",
        "panels": "Panels",
        "defects_counted": "Defects (after review)",
        "defects_reported": "Defects reported",
        "reviewed": "Reviewed",
        "pending": "Awaiting review",
        "confirmed": "Confirmed",
        "reclassified": "Reclassified",
        "false_calls": "False calls",
        "false_call_rate": "False-call rate (of reviewed)",
        "false_calls_per_board": "False calls per board",
        "escapes": "Escapes (missed, added by operators)",
        "escape_rate": "Escape rate (of real defects)",
        "escapes_note": "Escapes are defects the machine missed that operators added. Escape rate = escapes /"
        " (confirmed + reclassified + escapes); the false-call rate counts the machine's reported defects only.",
        "trace": "Traceability",
        "lots": "Lots",
        "lines": "Lines",
        "products": "Products",
        "model_versions": "Model versions",
        "reviewers": "Reviewers",
        "pareto": "Defects by type (Pareto)",
        "type": "Type",
        "count": "Count",
        "share": "Share",
        "cumulative": "Cumulative",
        "reported": "Reported",
        "escapes_short": "Escapes",
        "heat_map": "Defect positions on the board",
        "heat_map_note": "Defect centres on a {cols} x {rows} grid (false calls left out); the image's top at the top.",
        "failed_boards": "Failed boards",
        "failed_more": "{shown} of {total} shown.",
        "time": "Time",
        "panel": "Panel",
        "lot": "Lot",
        "line": "Line",
        "image": "Image",
        "defects": "Defects",
        "none": "–",
        "no_defects": "No defects.",
        "no_failed": "No failed boards.",
    },
    "ko": {
        "lot_report": "로트 보고서",
        "shift_report": "교대 보고서",
        "shift": "교대",
        "generated": "작성",
        "period": "검사 기간",
        "summary": "요약",
        "inspections": "검사 수",
        "passed": "양품",
        "failed": "불량",
        "yield": "수율",
        "panels": "패널 수",
        "defects_counted": "결함 (검토 반영)",
        "defects_reported": "보고된 결함",
        "reviewed": "검토 완료",
        "pending": "검토 대기",
        "confirmed": "확정",
        "reclassified": "재분류",
        "false_calls": "가성불량",
        "false_call_rate": "가성불량률 (검토 대비)",
        "false_calls_per_board": "보드당 가성불량",
        "escapes": "유출 (미검출, 작업자 추가)",
        "escape_rate": "유출률 (실제 결함 대비)",
        "escapes_note": "유출은 장비가 놓쳐 작업자가 추가한 결함입니다. 유출률 = 유출 / (확정 + 재분류 + 유출)이며,"
        " 가성불량률은 장비가 보고한 결함만으로 계산합니다.",
        "trace": "추적성",
        "lots": "로트",
        "lines": "라인",
        "products": "제품",
        "model_versions": "모델 버전",
        "reviewers": "검토자",
        "pareto": "유형별 결함 (파레토)",
        "type": "유형",
        "count": "건수",
        "share": "비율",
        "cumulative": "누적",
        "reported": "보고",
        "escapes_short": "유출",
        "heat_map": "보드상 결함 위치",
        "heat_map_note": "결함 중심을 {cols} x {rows} 격자로 집계 (가성불량 제외), 이미지 위쪽이 위.",
        "failed_boards": "불량 보드",
        "failed_more": "전체 {total}건 중 {shown}건 표시.",
        "time": "시각",
        "panel": "패널",
        "lot": "로트",
        "line": "라인",
        "image": "이미지",
        "defects": "결함",
        "none": "–",
        "no_defects": "결함 없음.",
        "no_failed": "불량 보드 없음.",
    },
}

_CSS = """
:root { color: #111; background: #fff; font-family: system-ui, "Segoe UI", Roboto, "Malgun Gothic",
  "Apple SD Gothic Neo", "Noto Sans CJK KR", sans-serif; font-size: 13px; }
body { margin: 24px auto; max-width: 980px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 22px 0 8px; border-bottom: 1px solid #ccc; }
.meta { color: #555; margin: 0 0 2px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.tile { border: 1px solid #ccc; border-radius: 6px; padding: 6px 10px; }
.tile .v { font-size: 20px; font-weight: 700; } .tile .k { color: #555; font-size: 11px; }
.tile.bad .v { color: #b3261e; } .tile.good .v { color: #1b7f3b; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #ddd; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.bar { display: inline-block; height: 10px; background: #4c6ef5; vertical-align: middle; }
dl.trace { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; }
dl.trace dt { color: #555; } dl.trace dd { margin: 0; }
.note { color: #555; font-size: 12px; }
.heat { display: flex; gap: 16px; align-items: flex-start; }
.heat svg { border: 1px solid #999; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } table, .heat { break-inside: avoid; } }
"""


def _fmt_pct(ratio: float | None, none: str) -> str:
    return none if ratio is None else f"{ratio * 100:.1f}%"


def _fmt_time(moment: datetime | None, zone: tzinfo, none: str) -> str:
    if moment is None:
        return none
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.strftime("%Z") or local.strftime("%z"))


def _type_label(value: str, lang: str) -> tuple[str, str]:
    """A defect type's name in `lang` and its catalogue colour (a type the catalogue lacks: as stored, grey)."""
    try:
        info = TYPE_INFO[DefectType(value)]
    except ValueError:
        return value, "#888888"
    r, g, b = info.colour_rgb
    return info.labels.get(lang, info.labels.get("en", value)), f"#{r:02x}{g:02x}{b:02x}"


def _heat_svg(report: QualityReport) -> str:
    heat = report.heat_map
    width = 420
    w, h = heat.board_wh or (1, 1)
    height = max(120, min(640, round(width * h / max(w, 1))))
    cell_w, cell_h = width / heat.cols, height / heat.rows
    peak = heat.peak
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' role="img" class="heat-map">'
    ]
    for r, counts in enumerate(heat.counts):
        for c, count in enumerate(counts):
            level = 0.0 if peak == 0 else count / peak
            fill = f"rgba(214, 40, 40, {0.08 + 0.87 * level:.3f})" if count else "#f4f5f7"
            x, y = c * cell_w, r * cell_h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell_w:.1f}" height="{cell_h:.1f}" fill="{fill}"'
                f' stroke="#fff" data-row="{r}" data-col="{c}" data-count="{count}"/>'
            )
            if count:
                colour = "#fff" if level > 0.55 else "#111"
                parts.append(
                    f'<text x="{x + cell_w / 2:.1f}" y="{y + cell_h / 2 + 4:.1f}" font-size="12" text-anchor="middle"'
                    f' fill="{colour}">{count}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: QualityReport, lang: str = "en", zone: tzinfo = UTC) -> str:
    """A printable page in `lang` ("en" or "ko"); times in the plant's `zone`. Every stored value is escaped."""
    text = LABELS.get(lang, LABELS["en"])
    none = text["none"]
    scope = report.scope
    summary = report_dict(report)["summary"]

    def e(value: object) -> str:
        return escape("" if value is None else str(value))

    if scope.kind == "lot":
        heading = f"{text['lot_report']}: {e(scope.title)}"
        if scope.filters.line:
            heading += f" · {text['line']} {e(scope.filters.line)}"
    else:
        heading = f"{text['shift_report']}: {e(scope.date)} · {text['shift']} {e(scope.shift)} ({e(scope.shift_hours)})"
        if scope.filters.line:
            heading += f" · {text['line']} {e(scope.filters.line)}"

    def tile(key: str, value: str, tone: str = "") -> str:
        return (
            f'<div class="tile {tone}" data-key="{key}"><div class="v">{value}</div>'
            f'<div class="k">{text[key]}</div></div>'
        )

    y = report.inspections.yield_ratio
    tiles = [
        tile("inspections", str(report.inspections.total)),
        tile("passed", str(report.inspections.passed)),
        tile("failed", str(report.inspections.failed), "bad" if report.inspections.failed else ""),
        tile("yield", _fmt_pct(y, none), "good" if y is not None and y >= 0.95 else ("bad" if y is not None else "")),
        tile("panels", str(report.panels)),
        tile("defects_counted", str(report.defects_counted)),
        tile("defects_reported", str(summary["defects_reported"])),
        tile("reviewed", str(summary["reviewed"])),
        tile("pending", str(summary["pending"])),
        tile("confirmed", str(summary["confirmed"])),
        tile("reclassified", str(summary["reclassified"])),
        tile("false_calls", str(summary["false_calls"])),
        tile("false_call_rate", _fmt_pct(report.false_call_rate, none)),
        tile(
            "false_calls_per_board",
            none if report.false_calls_per_board is None else f"{report.false_calls_per_board:.3f}",
        ),
        tile("escapes", str(summary["escapes"]), "bad" if summary["escapes"] else ""),
        tile("escape_rate", _fmt_pct(report.escape_rate, none)),
    ]

    trace_rows = "".join(
        f"<dt>{text[key]}</dt><dd>{e(', '.join(values)) or none}</dd>"
        for key, values in (
            ("lots", report.lots),
            ("lines", report.lines),
            ("products", report.products),
            ("model_versions", report.model_versions),
            ("reviewers", report.reviewers),
        )
    )

    total_counted = sum(r.count for r in report.pareto)
    peak = max((r.count for r in report.pareto), default=0)
    pareto_rows = []
    cumulative = 0
    for r in report.pareto:
        cumulative += r.count
        share = r.count / total_counted if total_counted else None
        running = cumulative / total_counted if total_counted else None
        bar = 0 if peak == 0 else round(160 * r.count / peak)
        label, colour = _type_label(r.type, lang)
        pareto_rows.append(
            f'<tr data-type="{e(r.type)}"><td>{e(label)}</td><td class="n">{r.count}</td>'
            f'<td><span class="bar" style="width:{bar}px;background:{colour}"></span></td>'
            f'<td class="n">{_fmt_pct(share, none)}</td><td class="n">{_fmt_pct(running, none)}</td>'
            f'<td class="n">{r.reported}</td><td class="n">{r.false_calls}</td><td class="n">{r.escapes}</td></tr>'
        )
    pareto = (
        f'<table class="pareto"><thead><tr><th>{text["type"]}</th><th class="n">{text["count"]}</th><th></th>'
        f'<th class="n">{text["share"]}</th><th class="n">{text["cumulative"]}</th>'
        f'<th class="n">{text["reported"]}</th>'
        f'<th class="n">{text["false_calls"]}</th><th class="n">{text["escapes_short"]}</th></tr></thead>'
        f"<tbody>{''.join(pareto_rows)}</tbody></table>"
        if pareto_rows
        else f'<p class="note">{text["no_defects"]}</p>'
    )

    board_rows = "".join(
        f'<tr data-inspection="{e(b.inspection_id)}"><td>{e(_fmt_time(b.created_at, zone, none))}</td>'
        f"<td>{e(b.lot) or none}</td><td>{e(b.panel_id) or none}</td><td>{e(b.line) or none}</td>"
        f'<td>{e(b.image_id)}</td><td class="n">{b.defects}</td><td class="n">{b.false_calls}</td></tr>'
        for b in report.failed_boards
    )
    failed = (
        f'<table class="failed"><thead><tr><th>{text["time"]}</th><th>{text["lot"]}</th><th>{text["panel"]}</th>'
        f'<th>{text["line"]}</th><th>{text["image"]}</th><th class="n">{text["defects"]}</th>'
        f'<th class="n">{text["false_calls"]}</th></tr></thead><tbody>{board_rows}</tbody></table>'
        if board_rows
        else f'<p class="note">{text["no_failed"]}</p>'
    )
    if report.failed_boards_total > len(report.failed_boards):
        more = text["failed_more"].format(shown=len(report.failed_boards), total=report.failed_boards_total)
        failed += f'<p class="note">{more}</p>'

    period = f"{_fmt_time(report.first_at, zone, none)} – {_fmt_time(report.last_at, zone, none)}"
    heat_note = text["heat_map_note"].format(cols=report.heat_map.cols, rows=report.heat_map.rows)
    html_lang = lang if lang in LANGUAGES else "en"
    return f"""<!doctype html>
<html lang="{html_lang}">
<head>
<meta charset="utf-8">
<title>{heading}</title>
<style>{_CSS}</style>
</head>
<body data-kind="{e(scope.kind)}">
<h1>{heading}</h1>
<p class="meta">{text["period"]}: {e(period)}</p>
<p class="meta">{text["generated"]}: {e(_fmt_time(report.generated_at, zone, none))}</p>
<h2>{text["summary"]}</h2>
<div class="tiles">{"".join(tiles)}</div>
<p class="note">{text["escapes_note"]}</p>
<h2>{text["trace"]}</h2>
<dl class="trace">{trace_rows}</dl>
<h2>{text["pareto"]}</h2>
{pareto}
<h2>{text["heat_map"]}</h2>
<div class="heat">{_heat_svg(report)}<p class="note">{heat_note}</p></div>
<h2>{text["failed_boards"]}</h2>
{failed}
</body>
</html>
"""


@dataclass(frozen=True)
class RenderedReport:
    body: str
    media_type: str
    file_name: str


def rendered(report: QualityReport, fmt: ReportFormat, lang: str = "en", zone: tzinfo = UTC) -> RenderedReport:
    return RenderedReport(render(report, fmt, lang, zone), MEDIA_TYPES[fmt], file_name(report, fmt))
