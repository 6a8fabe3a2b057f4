// Board view: the tested image with one marker per defect (coloured by type, tooltip with the numbers).

import { getInspection, listInspections, overlayUrl } from "./api.js";
import { clearError, showError } from "./banner.js";
import { DEFECT_TYPES, typeColor } from "./defect_types.js";
import { detailsList, el } from "./dom.js";
import { boxText, imageSizeWh, inspectionTimeText, productText, reviewText, timingsText } from "./records.js";

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

  legend.replaceChildren(
    ...DEFECT_TYPES.map((t) => el("li", {}, el("span", { class: "swatch", style: { background: t.color } }), t.label)),
  );

  let shownId = null;

  function showTooltip(marker, defect) {
    tooltip.replaceChildren(
      el("strong", {}, defect.type),
      el("div", {}, `confidence ${(defect.confidence * 100).toFixed(1)} %`),
      el("div", {}, `box ${boxText(defect.box_mm, 2)} mm`),
      el("div", {}, `review: ${reviewText(defect)}`),
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
          "aria-label": `${defect.type} ${(defect.confidence * 100).toFixed(0)} %`,
          dataset: { type: defect.type, index: String(i + 1), defectId: defect.id ?? "" },
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
    title.textContent = inspection.image_id || inspection.id;
    tooltip.hidden = true;
    markers.replaceChildren();
    delete markers.dataset.count;
    image.onload = () => drawMarkers(inspection);
    image.onerror = () => showError(new Error(`The board image of inspection ${inspection.id} could not be loaded.`), "board-image");
    image.src = overlayUrl(inspection.id);
    detailsList(details, [
      ["verdict", el("span", { class: `badge verdict-${inspection.verdict}` }, String(inspection.verdict).toUpperCase())],
      ["product", productText(inspection)],
      ["time", inspectionTimeText(inspection)],
      ["defects", String((inspection.defects || []).length)],
      ["timings", timingsText(inspection)],
      ["model", inspection.model_version || "–"],
    ]);
    tableBody.replaceChildren(
      ...(inspection.defects || []).map((defect, i) =>
        el(
          "tr",
          { dataset: { type: defect.type } },
          el("td", {}, String(i + 1)),
          el("td", {}, el("span", { class: "type-chip", style: { "--chip": typeColor(defect.type) } }, defect.type)),
          el("td", {}, `${(defect.confidence * 100).toFixed(0)} %`),
          el("td", {}, boxText(defect.box_mm, 2)),
          el("td", {}, reviewText(defect)),
        ),
      ),
    );
  }

  async function fillChoices(selectedId) {
    const inspections = await listInspections({ limit: CHOICES_LIMIT });
    select.replaceChildren(
      ...inspections.map((i) =>
        el("option", { value: i.id, selected: i.id === selectedId }, `${inspectionTimeText(i)} · ${i.verdict} · ${i.image_id || i.id}`),
      ),
    );
    if (selectedId && !inspections.some((i) => i.id === selectedId)) {
      select.prepend(el("option", { value: selectedId, selected: true }, selectedId));
    }
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

  select.addEventListener("change", () => {
    if (select.value && select.value !== shownId) window.location.hash = `#board/${select.value}`;
  });

  return { show, hide() {} };
}
