// Reads the API's inspection/defect JSON in one place, so the views never spell field names themselves.

export function inspectionTimeText(inspection) {
  const created = inspection.created_at ? new Date(inspection.created_at) : null;
  return created && !Number.isNaN(created.getTime()) ? created.toLocaleTimeString() : "–";
}

export function totalMs(inspection) {
  const timings = inspection.timings_ms || {};
  const total = timings.total ?? Object.values(timings).reduce((sum, v) => sum + Number(v || 0), 0);
  return Number.isFinite(total) ? total : null;
}

export function timingsText(inspection) {
  const timings = inspection.timings_ms || {};
  const parts = Object.entries(timings).map(([stage, ms]) => `${stage} ${Number(ms).toFixed(1)}`);
  return parts.length ? parts.join(" · ") + " ms" : "–";
}

export function imageSizeWh(inspection) {
  const wh = inspection.image_size_wh;
  if (Array.isArray(wh) && wh.length === 2) return [Number(wh[0]), Number(wh[1])];
  return null;
}

export function productText(inspection) {
  return inspection.product_name || inspection.product || "–";
}

// The review of a defect, as {status, type} or null when no operator has decided yet.
export function defectReview(defect) {
  const review = defect.review;
  if (review && typeof review === "object" && review.status) {
    return { status: review.status, type: review.type ?? review.reviewed_type ?? null };
  }
  if (defect.review_status) return { status: defect.review_status, type: defect.reviewed_type ?? null };
  return null;
}

export function reviewText(defect) {
  const review = defectReview(defect);
  if (!review) return "pending";
  if (review.status === "reclassify" || review.status === "reclassified") return `→ ${review.type}`;
  return review.status.replace("_", " ");
}

export function boxText(box, digits) {
  return Array.isArray(box) ? "[" + box.map((v) => Number(v).toFixed(digits)).join(", ") + "]" : "–";
}
