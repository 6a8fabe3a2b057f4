from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from aoi.api.routers.deps import Services, services

router = APIRouter(tags=["operations"])


@router.get("/health")
def health(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    """200 when the database answers; 503 otherwise. Includes the model version and pipeline state."""
    body: dict[str, Any] = {"status": "ok", "model_version": svc.inspections.inspector.model_version}
    try:
        with svc.storage.db.session() as session:
            session.execute(text("SELECT 1"))
        body["database"] = "ok"
    except Exception as exc:  # the health probe reports, it does not raise
        body.update(status="degraded", database=f"error: {type(exc).__name__}")
    if svc.line is not None:
        body["pipeline"] = svc.line.health()
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(svc: Annotated[Services, Depends(services)]) -> PlainTextResponse:
    """Prometheus text exposition format."""
    return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
