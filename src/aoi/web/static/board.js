// Board view: the tested image as captured (unannotated) with one marker per defect drawn over it (coloured by
// type, tooltip with the numbers), and the tool that adds a defect the machine missed (missed.js).

import { ApiError, getInspection, imageUrl, listInspections } from "./api.js";
import { clearError, showError } from "./banner.js";
import { DEFECT_TYPES, typeColor, typeLabel } from "./defect_types.js";
import { detailsList, el } from "./dom.js";
import { formatNumber, formatPercent, t } from "./i18n.js";
import { showImage } from "./image_cache.js";
import { createMissedDefectTool } from "./missed.js";
import {
  boxText,
  imageSizeWh,
  inspectionTimeText,
  productText,
  reviewText,
  timingsText,
  verdictText,
} from "./records.js";

const CHOICES_LIMIT = 50;

export function createBoardView() {
  const stage = document.getElementById("board-stage");
  const image = document.getElementById("board-image");
  const markers = document.getElementById("board-markers");
  const tooltip = document.getElementById("board-tooltip");
  const select = document.getElementById("board-select");
  const title = document.getElementById("board-title");
  const details = document.getElementById("board-details");
  const legend = document.getElementById("board-legend");
  const tableBody = document.querySelector("#board-defects tbody");
  const empty = document.getElementById("board-empty");

  function drawLegend() {
    legend.replaceChildren(
      ...DEFECT_TYPES.map((type) =>
        el("li", {}, el("span", { class: "swatch", style: { background: type.color } }), typeLabel(type.value)),
      ),
    );
  }
  drawLegend();

  let shownId = null;
  let shown = null; // {inspection, choices}: what is on screen, re-rendered as it is on a language switch

  function showTooltip(marker, defect) {
    tooltip.replaceChildren(
      el("strong", {}, typeLabel(defect.type)),
      el("div", {}, t("board.tip_confidence", { value: formatPercent(defect.confidence, 1) })),
      el("div", {}, t("board.tip_box", { box: boxText(defect.box_mm, 2) })),
      el("div", {}, t("board.tip_review", { review: reviewText(defect) })),
    );
    tooltip.hidden = false;
    const stageBox = stage.getBoundingClientRect();
    const box = marker.getBoundingClientRect();
    tooltip.style.left = `${Math.min(box.right - stageBox.left + 6, stageBox.width - 180)}px`;
    tooltip.style.top = `${Math.max(box.top - stageBox.top, 0)}px`;
  }

  // Markers are placed in percent of the image size, so they stay on their defects at any display width.
  function drawMarkers(inspection) {
    const wh = imageSizeWh(inspection) ?? [image.naturalWidth, image.naturalHeight];
    const [width, height] = wh;
    markers.replaceChildren(
      ...(inspection.defects || []).map((defect, i) => {
        const [x1, y1, x2, y2] = defect.box_px;
        const marker = el("div", {
          class: "marker",
          tabindex: "0",
          "aria-label": `${typeLabel(defect.type)} ${formatPercent(defect.confidence, 0)}`,
          dataset: { type: defect.type, index: String(i + 1), defectId: defect.id ?? "", origin: defect.origin ?? "engine" },
          style: {
            left: `${(x1 / width) * 100}%`,
            top: `${(y1 / height) * 100}%`,
            width: `${((x2 - x1) / width) * 100}%`,
            height: `${((y2 - y1) / height) * 100}%`,
            "--marker": typeColor(defect.type),
          },
        });
        const show = () => showTooltip(marker, defect);
        marker.addEventListener("mouseenter", show);
        marker.addEventListener("focus", show);
        marker.addEventListener("mouseleave", () => (tooltip.hidden = true));
        marker.addEventListener("blur", () => (tooltip.hidden = true));
        return marker;
      }),
    );
    markers.dataset.count = String((inspection.defects || []).length);
  }

  function render(inspection) {
    shownId = inspection.id;
    shown = { ...shown, inspection };
    missed.setInspection(inspection);
    title.textContent = inspection.image_id || inspection.id;
    tooltip.hidden = true;
    markers.replaceChildren();
    delete markers.dataset.count;
    showImage(image, imageUrl(inspection.id)) // the raw capture: the markers below are its only annotations
      .then(() => {
        if (shownId === inspection.id) drawMarkers(inspection);
        clearError("board-image");
      })
      .catch((err) => {
        // A refused key says so (401/403 and what to do); anything else is "the image could not be loaded".
        const refused = err instanceof ApiError && (err.status === 401 || err.status === 403);
        showError(refused ? err : new Error(t("board.image_failed", { id: inspection.id })), "board-image");
      });
    describe(inspection);
  }

  // The text beside the image: details and the defect table (redrawn alone on a language switch).
  function describe(inspection) {
    detailsList(details, [
      [t("field.verdict"), el("span", { class: `badge verdict-${inspection.verdict}` }, verdictText(inspection.verdict))],
      [t("field.product"), productText(inspection)],
      [t("field.time"), inspectionTimeText(inspection)],
      [t("field.defects"), formatNumber((inspection.defects || []).length)],
      [t("field.timings"), timingsText(inspection)],
      [t("field.model"), inspection.model_version || t("value.none")],
      [t("field.lot"), inspection.lot || t("value.none")],
      [t("field.panel"), inspection.panel_id || t("value.none")],
      [t("field.line"), inspection.line || t("value.none")],
    ]);
    tableBody.replaceChildren(
      ...(inspection.defects || []).map((defect, i) =>
        el(
          "tr",
          { dataset: { type: defect.type, origin: defect.origin ?? "engine" } },
          el("td", {}, String(i + 1)),
          el("td", {}, el("span", { class: "type-chip", style: { "--chip": typeColor(defect.type) } }, typeLabel(defect.type))),
          el("td", {}, formatPercent(defect.confidence, 0)),
          el("td", {}, boxText(defect.box_mm, 2)),
          el("td", {}, reviewText(defect)),
        ),
      ),
    );
  }

  function drawChoices(inspections, selectedId) {
    shown = { ...shown, choices: inspections };
    select.replaceChildren(
      ...inspections.map((i) =>
        el(
          "option",
          { value: i.id, selected: i.id === selectedId },
          `${inspectionTimeText(i)} · ${verdictText(i.verdict)} · ${i.image_id || i.id}`,
        ),
      ),
    );
    if (selectedId && !inspections.some((i) => i.id === selectedId)) {
      select.prepend(el("option", { value: selectedId, selected: true }, selectedId));
    }
  }

  async function fillChoices(selectedId) {
    const inspections = await listInspections({ limit: CHOICES_LIMIT });
    drawChoices(inspections, selectedId);
    return inspections;
  }

  async function show(inspectionId) {
    try {
      const inspections = await fillChoices(inspectionId);
      const id = inspectionId || inspections[0]?.id;
      empty.hidden = Boolean(id);
      stage.hidden = !id;
      if (!id) return;
      select.value = id;
      render(await getInspection(id));
      clearError("board");
    } catch (err) {
      showError(err, "board");
    }
  }

  const missed = createMissedDefectTool({
    stage,
    image,
    sizeOf: (inspection) => imageSizeWh(inspection) ?? [image.naturalWidth, image.naturalHeight],
    async onAdded(inspectionId) {
      try {
        if (shownId === inspectionId) render(await getInspection(inspectionId)); // its new defect, its verdict
      } catch (err) {
        showError(err, "board");
      }
    },
  });

  select.addEventListener("change", () => {
    if (select.value && select.value !== shownId) window.location.hash = `#board/${select.value}`;
  });

  function relabel() {
    missed.relabel();
    drawLegend();
    if (shown?.choices) drawChoices(shown.choices, select.value);
    if (!shown?.inspection) return;
    describe(shown.inspection);
    tooltip.hidden = true;
    if (image.complete && image.naturalWidth > 0 && markers.dataset.count !== undefined) drawMarkers(shown.inspection);
  }

  return {
    show(inspectionId) {
      missed.show();
      return show(inspectionId);
    },
    hide() {
      missed.hide();
    },
    relabel,
  };
}
