"""Lot and shift reports (`aoi.reports`): yield, defect Pareto, defect heat map and review figures, as a
printable HTML page, CSV or JSON. Reads: the `read` scope unless reads are open."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from aoi.api.auth import READ_RESPONSES, require_read_key
from aoi.api.errors import ApiError
from aoi.api.routers.deps import Services, services
from aoi.reports import EmptyReport, ReportFormat, build_report, lot_scope, rendered, shift_scope
from aoi.schema import SchemaError
from aoi.shifts import ShiftError, ShiftPlan, plant_zone
from aoi.storage.reports import ReportScope

router = APIRouter(prefix="/reports", tags=["reports"])

RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/html": {}, "text/csv": {}, "application/json": {}}},
    **READ_RESPONSES,
}
FormatQuery = Annotated[ReportFormat, Query(alias="format", description="html (printable page), csv or json")]
LangQuery = Annotated[str, Query(pattern="^(en|ko)$", description="language of the HTML page: en or ko")]
LineQuery = Annotated[str | None, Query(description="only the boards of this line")]


def _answer(svc: Services, scope: ReportScope, fmt: ReportFormat, lang: str) -> Response:
    try:
        report = build_report(svc.storage, scope)
    except EmptyReport as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    zone = plant_zone(svc.settings.shift_timezone)
    out = rendered(report, fmt, lang, zone)
    disposition = "inline" if fmt is not ReportFormat.CSV else "attachment"
    headers = {"Content-Disposition": f'{disposition}; filename="{out.file_name}"', "Cache-Control": "no-store"}
    return Response(out.body, media_type=out.media_type, headers=headers)


@router.get("/lot/{lot}", response_class=Response, dependencies=[Depends(require_read_key)], responses=RESPONSES)
def lot_report(
    lot: str,
    svc: Annotated[Services, Depends(services)],
    fmt: FormatQuery = ReportFormat.HTML,
    lang: LangQuery = "en",
    line: LineQuery = None,
) -> Response:
    """Every stored inspection of one lot (404 when it has none; 422 for a lot id no board can carry)."""
    try:
        scope = lot_scope(lot, line)
    except SchemaError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return _answer(svc, scope, fmt, lang)


@router.get("/shift", response_class=Response, dependencies=[Depends(require_read_key)], responses=RESPONSES)
def shift_report(
    svc: Annotated[Services, Depends(services)],
    day: Annotated[
        date | None, Query(alias="date", description="the date the shift starts on (YYYY-MM-DD); default: today's")
    ] = None,
    shift: Annotated[
        str | None, Query(max_length=40, description="shift name (aoi serve --shifts); default: the one running now")
    ] = None,
    fmt: FormatQuery = ReportFormat.HTML,
    lang: LangQuery = "en",
    line: LineQuery = None,
) -> Response:
    """One shift's inspections, in the plant's hours (`aoi serve --shifts`, `--shift-timezone`).

    Without `date` and `shift`, the shift running now; a date needs its shift named."""
    plan = ShiftPlan.parse(svc.settings.shifts)
    zone = plant_zone(svc.settings.shift_timezone)
    if shift is None:
        if day is not None:
            raise ApiError(
                422, "invalid_request", f"name the shift of {day.isoformat()}: one of {', '.join(plan.names)}"
            )
        running = plan.current(datetime.now(UTC), zone)
        if running is None:
            raise ApiError(422, "invalid_request", f"no shift runs now; name one of {', '.join(plan.names)}")
        day, shift = running[0], running[1].name
    elif day is None:
        raise ApiError(422, "invalid_request", "give the shift's date (YYYY-MM-DD) with its name")
    try:
        scope = shift_scope(plan, zone, day, shift, line)
    except (ShiftError, SchemaError) as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return _answer(svc, scope, fmt, lang)
