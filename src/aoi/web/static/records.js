// Reads the API's inspection/defect JSON in one place, so the views never spell field names themselves,
// and says it in the chosen language (i18n.js) with the chosen language's time and number formats.

import { typeLabel } from "./defect_types.js";
import { formatNumber, formatTime, t } from "./i18n.js";

const STAGE_KEYS = new Set(["register", "candidates", "classify", "total"]);

export function inspectionTimeText(inspection) {
  const created = inspection.created_at ? new Date(inspection.created_at) : null;
  return created && !Number.isNaN(created.getTime()) ? formatTime(created) : t("value.none");
}

export function totalMs(inspection) {
  const timings = inspection.timings_ms || {};
  const total = timings.total ?? Object.values(timings).reduce((sum, v) => sum + Number(v || 0), 0);
  return Number.isFinite(total) ? total : null;
}

// A stage the catalogue knows is named in the chosen language; a new one shows as the engine spells it.
function stageName(stage) {
  return STAGE_KEYS.has(stage) ? t(`stage.${stage}`) : stage;
}

export function timingsText(inspection) {
  const timings = inspection.timings_ms || {};
  const parts = Object.entries(timings).map(([stage, ms]) => `${stageName(stage)} ${formatNumber(Number(ms), 1)}`);
  return parts.length ? t("unit.ms", { value: parts.join(" · ") }) : t("value.none");
}

export function verdictText(verdict) {
  return verdict === "pass" || verdict === "fail" ? t(`verdict.${verdict}`) : String(verdict).toUpperCase();
}

export function imageSizeWh(inspection) {
  const wh = inspection.image_size_wh;
  if (Array.isArray(wh) && wh.length === 2) return [Number(wh[0]), Number(wh[1])];
  return null;
}

// "L2405 · P0117" (what is known of the board's lot and panel), or null when neither is.
export function traceText(inspection) {
  const parts = [inspection.lot, inspection.panel_id].filter(Boolean);
  return parts.length ? parts.join(" · ") : null;
}

export function productText(inspection) {
  return inspection.product_name || inspection.product || t("value.none");
}

// The review of a defect ({status: confirmed | false_call | reclassified, type, reviewed_by, reviewed_at}),
// or null while no operator has decided.
export function defectReview(defect) {
  return defect.review ?? null;
}

// "engine" (reported by the machine) or "operator" (added by an operator: a defect the machine missed).
export function defectOrigin(defect) {
  return defect.origin ?? "engine";
}

export function reviewText(defect) {
  const review = defectReview(defect);
  if (!review) return t("review.pending");
  if (defectOrigin(defect) === "operator" && review.status === "confirmed") return t("review.operator_added");
  if (review.status === "reclassified") return t("review.reclassified", { type: typeLabel(review.type) });
  if (review.status === "confirmed" || review.status === "false_call") return t(`review.${review.status}`);
  return String(review.status);
}

export function boxText(box, digits) {
  return Array.isArray(box) ? "[" + box.map((v) => formatNumber(Number(v), digits, false)).join(", ") + "]" : t("value.none");
}
