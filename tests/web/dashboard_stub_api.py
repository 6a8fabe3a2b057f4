"""TEMPORARY in-memory stand-in for the /api/v1 endpoints the dashboard reads, until aoi.api lands."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import cv2
import numpy as np
from fastapi import FastAPI, Header, HTTPException, Response
from fastapi.responses import JSONResponse

from aoi.web import router as dashboard_router


def make_stub_app(api_key: str) -> tuple[FastAPI, dict]:
    state: dict = {"inspections": []}
    app = FastAPI()

    def seed(defects: list[tuple[str, list[float]]]) -> dict:
        img = np.zeros((640, 640, 3), np.uint8)
        cv2.rectangle(img, (100, 100), (540, 540), (60, 120, 60), -1)
        for _t, box in defects:
            cv2.rectangle(img, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), (0, 0, 255), 2)
        ok, png = cv2.imencode(".png", img)
        ins = {
            "id": uuid.uuid4().hex,
            "image_id": f"board-{len(state['inspections'])}",
            "product": "demo",
            "verdict": "fail" if defects else "pass",
            "created_at": datetime.now(UTC).isoformat(),
            "image_size_wh": [640, 640],
            "model_version": "stub",
            "timings_ms": {"register": 1.0, "total": 5.5},
            "defects": [
                {"id": uuid.uuid4().hex, "type": t, "confidence": 0.9, "box_px": b, "box_mm": [v / 48 for v in b], "review": None}
                for t, b in defects
            ],
            "_png": png.tobytes(),
        }
        state["inspections"].append(ins)
        return ins

    state["seed"] = seed

    def public(ins: dict) -> dict:
        return {k: v for k, v in ins.items() if not k.startswith("_")}

    @app.get("/api/v1/inspections")
    def list_inspections(limit: int = 50) -> dict:
        items = list(reversed(state["inspections"]))[:limit]
        return {"items": [public(i) for i in items], "total": len(state["inspections"])}

    @app.get("/api/v1/inspections/{iid}")
    def get_inspection(iid: str) -> dict:
        for i in state["inspections"]:
            if i["id"] == iid:
                return public(i)
        raise HTTPException(404, f"no inspection {iid}")

    @app.get("/api/v1/inspections/{iid}/overlay.png")
    def overlay(iid: str) -> Response:
        for i in state["inspections"]:
            if i["id"] == iid:
                return Response(i["_png"], media_type="image/png")
        raise HTTPException(404, "no")

    @app.post("/api/v1/defects/{did}/review")
    def review(did: str, body: dict, authorization: str = Header(default="")) -> JSONResponse:
        if authorization != f"Bearer {api_key}":
            return JSONResponse({"detail": "the API key is not valid (unknown or revoked)"}, status_code=401)
        for i in state["inspections"]:
            for d in i["defects"]:
                if d["id"] == did:
                    status = {"confirm": "confirmed", "false_call": "false_call", "reclassify": "reclassified"}[body["decision"]]
                    d["review"] = {"status": status, "reviewed_type": body.get("type")}
                    return JSONResponse(d)
        return JSONResponse({"detail": "no defect"}, status_code=404)

    @app.get("/api/v1/products")
    def products() -> list:
        return [{"id": "p1", "name": "demo"}]

    @app.get("/api/v1/stats")
    def stats() -> dict:
        by_type: Counter = Counter()
        for i in state["inspections"]:
            for d in i["defects"]:
                r = d["review"]
                if r and r["status"] == "false_call":
                    continue
                by_type[(r or {}).get("reviewed_type") or d["type"]] += 1
        total = len(state["inspections"])
        passed = sum(i["verdict"] == "pass" for i in state["inspections"])
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
        return {
            "overall": {"total": total, "passed": passed},
            "defects_by_type": dict(by_type),
            "per_hour": [{"hour": hour, "total": total, "passed": passed}] if total else [],
        }

    app.include_router(dashboard_router)
    return app, state
