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

// The review of a defect ({status: confirmed | false_call | reclassified, type, reviewed_by, reviewed_at}),
// or null while no operator has decided.
export function defectReview(defect) {
  return defect.review ?? null;
}

export function reviewText(defect) {
  const review = defectReview(defect);
  if (!review) return "pending";
  if (review.status === "reclassified") return `reclassified → ${review.type}`;
  return review.status.replace("_", " ");
}

export function boxText(box, digits) {
  return Array.isArray(box) ? "[" + box.map((v) => Number(v).toFixed(digits)).join(", ") + "]" : "–";
}
