// Marking a defect the machine missed (an escape) on the board view: the operator drags a box over the
// captured image, picks its type (keys 1–7 or the list) and saves it (Enter); Esc cancels, A starts. The
// service stores it already confirmed (POST /inspections/{id}/defects, the review scope), so it never enters
// the review queue; the reports count it as an escape.

import { addMissedDefect } from "./api.js";
import { clearError, showError } from "./banner.js";
import { DEFECT_TYPES, typeByKey, typeColor, typeLabel } from "./defect_types.js";
import { el } from "./dom.js";
import { formatNumber, t } from "./i18n.js";

function isTyping(event) {
  const target = event.target;
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA"].includes(target.tagName));
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

// `sizeOf(inspection)`: the image's [width, height] in pixels; `onAdded(inspectionId)` shows the board again.
export function createMissedDefectTool({ stage, image, sizeOf, onAdded }) {
  const button = document.getElementById("board-add-button");
  const form = document.getElementById("board-add-form");
  const typeSelect = document.getElementById("board-add-type");
  const boxText = document.getElementById("board-add-box");
  const status = document.getElementById("board-add-status");
  const cancelButton = document.getElementById("board-add-cancel");
  const draft = el("div", { class: "draft-box", hidden: true });
  const layer = el("div", { class: "draw-layer", hidden: true }, draft);
  stage.append(layer);
  button.disabled = true; // until a board is shown

  let inspection = null; // the inspection on screen
  let marking = false;
  let visible = false; // the board view is the active one
  let box = null; // [x1, y1, x2, y2] in image pixels
  let start = null; // where the drag began, in image pixels
  let saving = false;
  let said = null; // [key, params] of the status line, re-said on a language switch

  function say(key, params = {}) {
    said = key ? [key, params] : null;
    status.textContent = key ? t(key, params) : "";
  }

  function fillTypes() {
    const chosen = typeSelect.value;
    typeSelect.replaceChildren(
      ...DEFECT_TYPES.map((type) => el("option", { value: type.value }, `${type.hotkey} · ${typeLabel(type.value)}`)),
    );
    if (chosen) typeSelect.value = chosen;
  }
  fillTypes();

  function drawDraft() {
    draft.hidden = !box;
    boxText.textContent = box ? `[${box.map((v) => formatNumber(v, 0, false)).join(", ")}] px` : "";
    if (!box || !inspection) return;
    const [width, height] = sizeOf(inspection);
    const [x1, y1, x2, y2] = box;
    Object.assign(draft.style, {
      left: `${(x1 / width) * 100}%`,
      top: `${(y1 / height) * 100}%`,
      width: `${((x2 - x1) / width) * 100}%`,
      height: `${((y2 - y1) / height) * 100}%`,
    });
    draft.style.setProperty("--marker", typeColor(typeSelect.value));
  }

  function imagePoint(event) {
    const rect = image.getBoundingClientRect();
    const [width, height] = sizeOf(inspection);
    const x = ((event.clientX - rect.left) / Math.max(rect.width, 1)) * width;
    const y = ((event.clientY - rect.top) / Math.max(rect.height, 1)) * height;
    return [clamp(Math.round(x), 0, width), clamp(Math.round(y), 0, height)];
  }

  function setMarking(on) {
    marking = on && Boolean(inspection);
    form.hidden = !marking;
    layer.hidden = !marking;
    stage.classList.toggle("marking", marking);
    button.setAttribute("aria-pressed", String(marking));
    box = null;
    start = null;
    drawDraft();
    if (marking) {
      say(null);
      typeSelect.focus();
    }
  }

  async function save() {
    if (!marking || saving) return;
    if (!box) {
      say("board.add_need_box");
      return;
    }
    saving = true;
    form.classList.add("busy");
    const type = typeSelect.value;
    const inspectionId = inspection.id;
    try {
      await addMissedDefect(inspectionId, type, box);
      clearError("board-add");
      setMarking(false);
      say("board.add_done", { type: typeLabel(type) });
      button.focus();
      onAdded(inspectionId);
    } catch (err) {
      showError(err, "board-add");
      say("review.not_saved");
    } finally {
      saving = false;
      form.classList.remove("busy");
    }
  }

  layer.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    layer.setPointerCapture(event.pointerId);
    start = imagePoint(event);
    box = null;
    drawDraft();
  });
  layer.addEventListener("pointermove", (event) => {
    if (!start) return;
    const [x, y] = imagePoint(event);
    const next = [Math.min(start[0], x), Math.min(start[1], y), Math.max(start[0], x), Math.max(start[1], y)];
    box = next[2] > next[0] && next[3] > next[1] ? next : null; // a click is not a box
    drawDraft();
  });
  const endDrag = () => {
    start = null;
    if (box) typeSelect.focus(); // the keys go on working: 1–7, Enter, Esc
  };
  layer.addEventListener("pointerup", endDrag);
  layer.addEventListener("pointercancel", endDrag);

  button.addEventListener("click", () => setMarking(!marking));
  cancelButton.addEventListener("click", () => setMarking(false));
  typeSelect.addEventListener("change", drawDraft);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });

  document.addEventListener("keydown", (event) => {
    if (!visible || isTyping(event) || event.altKey || event.metaKey || event.ctrlKey) return;
    const key = event.key.toLowerCase();
    if (!marking) {
      if (key === "a" && inspection) {
        event.preventDefault();
        setMarking(true);
      }
      return;
    }
    const type = typeByKey(key);
    if (type) {
      typeSelect.value = type.value;
      drawDraft();
    } else if (key === "escape") setMarking(false);
    else if (key === "enter" && !(event.target instanceof HTMLButtonElement)) save(); // a button's Enter clicks it
    else return;
    event.preventDefault();
  });

  return {
    // A board is shown: a different one ends the marking.
    setInspection(next) {
      if (inspection?.id !== next?.id) {
        setMarking(false);
        say(null);
      }
      inspection = next;
      button.disabled = !next;
    },
    show() {
      visible = true;
    },
    hide() {
      visible = false;
      setMarking(false);
    },
    relabel() {
      fillTypes();
      drawDraft();
      if (said) say(...said);
    },
  };
}
