from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query
from fastapi.responses import FileResponse

from aoi.api.auth import READ_RESPONSES, require_read_key
from aoi.api.errors import ApiError
from aoi.api.models import StatsOut, stats_out
from aoi.api.routers.deps import Services, services
from aoi.storage.export import ExportError, ExportFormat, export_reviewed

router = APIRouter(tags=["stats"])


@router.get(
    "/stats",
    response_model=StatsOut,
    response_model_by_alias=True,
    dependencies=[Depends(require_read_key)],
    responses=READ_RESPONSES,
)
def get_stats(
    svc: Annotated[Services, Depends(services)],
    product: Annotated[str | None, Query(description="product id or name")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StatsOut:
    """Yield, defect Pareto by type (after review), per hour and per product, and review counts."""
    filters = svc.inspections.filters(product, None, since, until, None)
    return stats_out(svc.inspections.stats(filters))


@router.get(
    "/export",
    response_class=FileResponse,
    dependencies=[Depends(require_read_key)],
    responses={200: {"content": {"application/zip": {}}}, **READ_RESPONSES},
    tags=["learning"],
)
def export_dataset(
    svc: Annotated[Services, Depends(services)],
    background: BackgroundTasks,
    format: Annotated[ExportFormat, Query(description="dataset layout")] = ExportFormat.DEEPPCB,
) -> FileResponse:
    """Reviewed defects as a training dataset (zip): confirmed and reclassified kept, false calls dropped."""
    work = Path(tempfile.mkdtemp(prefix="aoi-export-"))
    background.add_task(shutil.rmtree, work, True)
    try:
        report = export_reviewed(svc.storage, work / "dataset", format)
    except ExportError as exc:
        raise ApiError(422, "export_failed", str(exc)) from None
    archive = shutil.make_archive(str(work / f"aoi-reviewed-{format.value}"), "zip", report.out_dir)
    headers = {"X-Export-Pairs": str(report.pairs), "X-Export-Boxes": str(report.boxes)}
    return FileResponse(archive, media_type="application/zip", filename=Path(archive).name, headers=headers)
