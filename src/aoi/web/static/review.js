// Review queue: one unreviewed defect at a time with a zoomed crop; keyboard decides, the API records it.

import { listInspections, overlayUrl, reviewDefect } from "./api.js";
import { clearError, showError } from "./banner.js";
import { DEFECT_TYPES, typeByKey, typeColor, typeLabel } from "./defect_types.js";
import { detailsList, el } from "./dom.js";
import { formatPercent, t } from "./i18n.js";
import { loadImage } from "./image_cache.js";
import { Poller } from "./poller.js";
import { boxText, defectReview, imageSizeWh, productText } from "./records.js";

const QUEUE_SOURCE_LIMIT = 100;
const POLL_MS = 2000;
const BACKGROUND_POLL_MS = 6000; // keeps the nav badge current while another view is open
const MIN_CROP_PX = 64;
const CROP_CONTEXT = 3; // the crop spans this many times the defect's larger side

function isTyping(event) {
  const target = event.target;
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
}

// Scale between the overlay PNG and the inspection's pixel coordinates (equal unless the server downsized it).
function imageScale(image, inspection) {
  const wh = imageSizeWh(inspection);
  return wh && wh[0] > 0 ? image.naturalWidth / wh[0] : 1;
}

function drawCrop(canvas, image, inspection, defect) {
  const ctx = canvas.getContext("2d");
  const scale = imageScale(image, inspection);
  const [x1, y1, x2, y2] = defect.box_px.map((v) => v * scale);
  const side = Math.max(MIN_CROP_PX * scale, CROP_CONTEXT * Math.max(x2 - x1, y2 - y1));
  const cropW = Math.min(side, image.naturalWidth);
  const cropH = Math.min(side, image.naturalHeight);
  const cx = (x1 + x2) / 2;
  const cy = (y1 + y2) / 2;
  const sx = Math.min(Math.max(cx - cropW / 2, 0), image.naturalWidth - cropW);
  const sy = Math.min(Math.max(cy - cropH / 2, 0), image.naturalHeight - cropH);
  const zoom = Math.min(canvas.width / cropW, canvas.height / cropH);
  const dx = (canvas.width - cropW * zoom) / 2;
  const dy = (canvas.height - cropH * zoom) / 2;
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = false; // operators judge edges: show the pixels, do not blur them
  ctx.drawImage(image, sx, sy, cropW, cropH, dx, dy, cropW * zoom, cropH * zoom);
  ctx.strokeStyle = typeColor(defect.type);
  ctx.lineWidth = 2;
  ctx.setLineDash([6, 4]);
  const pad = 4;
  ctx.strokeRect(dx + (x1 - sx) * zoom - pad, dy + (y1 - sy) * zoom - pad, (x2 - x1) * zoom + 2 * pad, (y2 - y1) * zoom + 2 * pad);
  ctx.setLineDash([]);
  canvas.dataset.drawn = defect.id;
}

function drawContext(canvas, image, inspection, defect) {
  const ctx = canvas.getContext("2d");
  const scale = imageScale(image, inspection);
  const fit = Math.min(canvas.width / image.naturalWidth, canvas.height / image.naturalHeight);
  const w = image.naturalWidth * fit;
  const h = image.naturalHeight * fit;
  const dx = (canvas.width - w) / 2;
  const dy = (canvas.height - h) / 2;
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(image, dx, dy, w, h);
  const [x1, y1, x2, y2] = defect.box_px.map((v) => v * scale * fit);
  ctx.strokeStyle = "#ffffff";
  ctx.lineWidth = 2;
  const r = 6;
  ctx.strokeRect(dx + x1 - r, dy + y1 - r, x2 - x1 + 2 * r, y2 - y1 + 2 * r);
}

function clearCanvas(canvas, message) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#bbb";
  ctx.font = "14px sans-serif";
  ctx.fillText(message, 12, 24);
  delete canvas.dataset.drawn;
}

export function createReviewView({ onQueueSize }) {
  const panel = document.getElementById("review-panel");
  const empty = document.getElementById("review-empty");
  const position = document.getElementById("review-position");
  const details = document.getElementById("review-details");
  const actions = document.getElementById("review-actions");
  const last = document.getElementById("review-last");
  const crop = document.getElementById("review-crop");
  const context = document.getElementById("review-context");

  let queue = []; // [{defect, inspection}] oldest inspection first
  let index = 0;
  let busy = false;
  let visible = false;
  const decidedHere = new Set(); // defect ids decided in this page, hidden even before the API list catches up

  const current = () => queue[index] ?? null;

  async function refresh() {
    let inspections;
    try {
      inspections = await listInspections({ limit: QUEUE_SOURCE_LIMIT, hasDefects: true });
      clearError("review");
    } catch (err) {
      showError(err, "review");
      return;
    }
    const keepId = current()?.defect.id;
    const chronological = [...inspections].sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    queue = chronological.flatMap((inspection) =>
      (inspection.defects || [])
        .filter((defect) => defect.id && !defectReview(defect) && !decidedHere.has(defect.id))
        .map((defect) => ({ defect, inspection })),
    );
    const kept = queue.findIndex((item) => item.defect.id === keepId);
    index = kept >= 0 ? kept : Math.min(index, Math.max(queue.length - 1, 0));
    onQueueSize(queue.length);
    if (visible) render();
  }

  function render() {
    const item = current();
    empty.hidden = item !== null;
    panel.hidden = item === null;
    position.textContent = item ? t("review.position", { index: index + 1, count: queue.length }) : "";
    if (!item) return;
    const { defect, inspection } = item;
    if (panel.dataset.defectId === defect.id) return; // already showing it; avoid redrawing on every poll
    panel.dataset.defectId = defect.id;
    panel.dataset.defectType = defect.type;
    detailsList(details, [
      [t("field.type"), el("span", { class: "type-chip", style: { "--chip": typeColor(defect.type) } }, typeLabel(defect.type))],
      [t("field.confidence"), formatPercent(defect.confidence, 1)],
      [t("field.box_px"), boxText(defect.box_px, 0)],
      [t("field.box_mm"), boxText(defect.box_mm, 2)],
      [t("field.inspection"), el("a", { href: `#board/${inspection.id}` }, inspection.image_id || inspection.id)],
      [t("field.product"), productText(inspection)],
    ]);
    clearCanvas(crop, t("review.loading"));
    clearCanvas(context, "");
    loadImage(overlayUrl(inspection.id))
      .then((image) => {
        if (current()?.defect.id !== defect.id) return;
        drawCrop(crop, image, inspection, defect);
        drawContext(context, image, inspection, defect);
      })
      .catch((err) => {
        clearCanvas(crop, t("review.image_missing"));
        showError(err, "review-image");
      });
  }

  async function decide(decision, newType) {
    const item = current();
    if (!item || busy) return;
    busy = true;
    panel.classList.add("busy");
    try {
      await reviewDefect(item.defect.id, decision, newType);
      clearError("review-post");
      decidedHere.add(item.defect.id);
      queue.splice(index, 1);
      index = Math.min(index, Math.max(queue.length - 1, 0));
      last.textContent = t(`review.done_${decision}`, { type: typeLabel(item.defect.type), new_type: typeLabel(newType) });
      onQueueSize(queue.length);
      render();
    } catch (err) {
      showError(err, "review-post");
      last.textContent = t("review.not_saved");
    } finally {
      busy = false;
      panel.classList.remove("busy");
    }
  }

  function move(step) {
    if (!queue.length) return;
    index = (index + step + queue.length) % queue.length;
    render();
  }

  function onKey(event) {
    if (!visible || isTyping(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    let handled = true;
    if (key === "c") decide("confirm");
    else if (key === "r" || key === "x") decide("false_call");
    else if (typeByKey(key)) decide("reclassify", typeByKey(key).value);
    else if (key === "arrowright" || key === "arrowdown") move(1);
    else if (key === "arrowleft" || key === "arrowup") move(-1);
    else handled = false;
    if (handled) event.preventDefault();
  }

  function drawActions() {
    actions.replaceChildren(
      el("button", { type: "button", class: "action confirm", "data-action": "confirm", onclick: () => decide("confirm") }, t("review.confirm_button")),
      el(
        "button",
        { type: "button", class: "action reject", "data-action": "false_call", onclick: () => decide("false_call") },
        t("review.reject_button"),
      ),
      el(
        "div",
        { class: "reclassify" },
        DEFECT_TYPES.map((type) =>
          el(
            "button",
            {
              type: "button",
              class: "action",
              "data-action": `reclassify:${type.value}`,
              style: { "--chip": type.color },
              onclick: () => decide("reclassify", type.value),
            },
            `${type.hotkey} ${typeLabel(type.value)}`,
          ),
        ),
      ),
    );
  }
  drawActions();
  document.addEventListener("keydown", onKey);

  const poller = new Poller(refresh, POLL_MS);
  return {
    show() {
      visible = true;
      delete panel.dataset.defectId;
      poller.intervalMs = POLL_MS;
      poller.stop();
      poller.start();
    },
    hide() {
      visible = false;
      poller.intervalMs = BACKGROUND_POLL_MS;
    },
    relabel() {
      drawActions();
      last.textContent = "";
      delete panel.dataset.defectId;
      if (visible) render();
    },
    startBackground() {
      poller.intervalMs = BACKGROUND_POLL_MS;
      poller.start();
    },
  };
}
