"""Response bodies of the review queue and the verification crops, with their mappers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from aoi.api import crops
from aoi.api.models import API_PREFIX, DefectOut, InspectionOut, inspection_out
from aoi.storage.records import StoredInspection
from aoi.storage.review_queue import Lease, QueueItem


class LeaseOut(BaseModel):
    holder_name: str = Field(description="the API key's name the defect is leased to")
    leased_at: datetime
    expires_at: datetime = Field(description="the defect goes back to the queue then, unless reviewed first")


class CropsOut(BaseModel):
    window_px: list[int] = Field(description="[x1, y1, x2, y2) of the crops in image pixels (x2, y2 exclusive)")
    margin_px: int = Field(description="context around the box on each side (less at the image's edge)")
    test_url: str = Field(description="the captured pixels, unannotated (PNG)")
    template_url: str | None = Field(None, description="the golden template registered onto them; null: none stored")
    difference_url: str | None = Field(None, description="|captured - template|; null: no template stored")
    template_note: str | None = Field(None, description="why there is no template side: no_template")


class ReviewItemOut(BaseModel):
    defect: DefectOut
    inspection: InspectionOut = Field(description="the inspection the defect belongs to, with all its defects")
    position: int = Field(description="1-based rank among the pending defects of the filter, in queue order")
    crops: CropsOut
    lease: LeaseOut | None = Field(None, description="the caller's lease on it; null for a look without a lease")


class ReviewNextOut(BaseModel):
    item: ReviewItemOut | None = Field(description="null: nothing pending is available to the caller")
    pending: int = Field(description="defects awaiting review (the filter's; the same count as /stats' pending)")
    leased: int = Field(description="of them, leased to an operator now")


class PendingOut(BaseModel):
    pending: int = Field(description="defects awaiting review: the same count as /stats reviews.pending")
    leased: int = Field(description="of them, leased to an operator now")


class ReleasedOut(BaseModel):
    released: int = Field(description="leases dropped")


def lease_out(lease: Lease | None) -> LeaseOut | None:
    if lease is None:
        return None
    return LeaseOut(holder_name=lease.holder_name, leased_at=lease.leased_at, expires_at=lease.expires_at)


def crops_out(stored: StoredInspection, defect_id: str) -> CropsOut:
    defect = next(d for d in stored.result.defects if d.id == defect_id)
    margin = crops.default_margin_px(defect.box_px)
    window = crops.crop_window(defect.box_px, stored.result.image_size_wh, margin)

    def url(side: crops.CropSide) -> str:
        return f"{API_PREFIX}/defects/{defect_id}/crops?side={side.value}&margin_px={margin}"

    has_template = stored.template_path is not None
    return CropsOut(
        window_px=list(window),
        margin_px=margin,
        test_url=url(crops.CropSide.TEST),
        template_url=url(crops.CropSide.TEMPLATE) if has_template else None,
        difference_url=url(crops.CropSide.DIFFERENCE) if has_template else None,
        template_note=None if has_template else "no_template",
    )


def review_item_out(item: QueueItem) -> ReviewItemOut:
    inspection = inspection_out(item.inspection)
    defect = next(d for d in inspection.defects if d.id == item.defect_id)
    return ReviewItemOut(
        defect=defect,
        inspection=inspection,
        position=item.position,
        crops=crops_out(item.inspection, item.defect_id),
        lease=lease_out(item.lease),
    )
