// Review queue: every pending defect of the whole backlog, one at a time, from the service's queue (oldest
// first), leased to this operator while it is shown so no other operator is handed it. The verification view
// shows the captured pixels, the golden template's pixels at the same place and their difference, side by
// side and unannotated, at a chosen zoom; the defect's box is an outline drawn beside its pixels, never on
// them; B blinks the captured panel between captured and golden. The keyboard decides, moves, undoes, blinks
// and zooms.

import {
  claimNext,
  getApiKey,
  imageUrl,
  listProducts,
  peekNext,
  pendingReviews,
  releaseLease,
  reviewDefect,
  undoReview,
} from "./api.js";
import { clearError, showError } from "./banner.js";
import { DEFECT_TYPES, typeByKey, typeColor, typeLabel } from "./defect_types.js";
import { detailsList, el } from "./dom.js";
import { formatPercent, formatTime, t } from "./i18n.js";
import { loadImage } from "./image_cache.js";
import { Poller } from "./poller.js";
import { boxText, imageSizeWh, inspectionTimeText, productText } from "./records.js";

const POLL_MS = 4000;
const BACKGROUND_POLL_MS = 6000; // keeps the nav badge current while another view is open
const RENEW_BELOW_MS = 60_000; // the shown defect's lease is claimed again when less than this is left
const ZOOMS = [1, 2, 3, 4, 6, 8, 12, 16]; // whole canvas pixels per image pixel: edges stay sharp
const FIT_CONTEXT = 3; // the fitted zoom shows this many times the defect's larger side
const FIT_MIN_VIEW_PX = 24;
const BLINK_MS = 450;
const OUTLINE_GAP_PX = 3; // canvas pixels left between the defect's pixels and its outline
const CONTEXT_DELAY_MS = 250; // the board overview is fetched once a defect has been shown this long

function isTyping(event) {
  const target = event.target;
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
}

function boxSide(defect) {
  const [x1, y1, x2, y2] = defect.box_px;
  return Math.max(x2 - x1, y2 - y1);
}

// The largest zoom that still shows the defect with FIT_CONTEXT times its size around it.
function fitZoom(canvas, defect) {
  const want = Math.max(FIT_CONTEXT * boxSide(defect), FIT_MIN_VIEW_PX);
  const fitting = ZOOMS.filter((zoom) => canvas.width / zoom >= want);
  return fitting.length ? fitting[fitting.length - 1] : ZOOMS[0];
}

function fillCanvas(canvas, message = "") {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (message) {
    ctx.fillStyle = "#bbb";
    ctx.font = "14px sans-serif";
    ctx.fillText(message, 12, 24);
  }
}

// `image` is a crop whose top-left pixel is the board's `crops.window_px[0..1]`. Drawn at a whole zoom,
// centred on the defect, unsmoothed; then the box as a 1 px outline OUTLINE_GAP_PX outside its pixels.
function drawCrop(canvas, image, item, zoom) {
  const ctx = canvas.getContext("2d");
  const { defect, crops } = item;
  const [wx, wy] = crops.window_px;
  const [x1, y1, x2, y2] = defect.box_px;
  const viewW = canvas.width / zoom;
  const viewH = canvas.height / zoom;
  const sx = Math.round((x1 + x2) / 2 - wx - viewW / 2);
  const sy = Math.round((y1 + y2) / 2 - wy - viewH / 2);
  fillCanvas(canvas);
  ctx.imageSmoothingEnabled = false; // operators judge edges: show the pixels, do not blur them
  const ix = Math.max(sx, 0);
  const iy = Math.max(sy, 0);
  const ex = Math.min(sx + viewW, image.naturalWidth);
  const ey = Math.min(sy + viewH, image.naturalHeight);
  if (ex > ix && ey > iy) {
    ctx.drawImage(image, ix, iy, ex - ix, ey - iy, (ix - sx) * zoom, (iy - sy) * zoom, (ex - ix) * zoom, (ey - iy) * zoom);
  }
  const left = Math.floor((x1 - wx - sx) * zoom) - OUTLINE_GAP_PX - 1;
  const top = Math.floor((y1 - wy - sy) * zoom) - OUTLINE_GAP_PX - 1;
  const right = Math.ceil((x2 - wx - sx) * zoom) + OUTLINE_GAP_PX;
  const bottom = Math.ceil((y2 - wy - sy) * zoom) + OUTLINE_GAP_PX;
  ctx.strokeStyle = typeColor(defect.type);
  ctx.lineWidth = 1;
  ctx.strokeRect(left + 0.5, top + 0.5, right - left, bottom - top);
  canvas.dataset.zoom = String(zoom);
  canvas.dataset.outline = [left, top, right, bottom].join(",");
}

// The whole board, fitted, with a white frame round the defect (the raw image: nothing burnt in).
function drawContext(canvas, image, item) {
  const ctx = canvas.getContext("2d");
  const wh = imageSizeWh(item.inspection);
  const scale = wh && wh[0] > 0 ? image.naturalWidth / wh[0] : 1;
  const fit = Math.min(canvas.width / image.naturalWidth, canvas.height / image.naturalHeight);
  const dx = (canvas.width - image.naturalWidth * fit) / 2;
  const dy = (canvas.height - image.naturalHeight * fit) / 2;
  fillCanvas(canvas);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(image, dx, dy, image.naturalWidth * fit, image.naturalHeight * fit);
  const [x1, y1, x2, y2] = item.defect.box_px.map((v) => v * scale * fit);
  const r = 5;
  ctx.strokeStyle = "#ffffff";
  ctx.lineWidth = 2;
  ctx.strokeRect(dx + x1 - r, dy + y1 - r, x2 - x1 + 2 * r, y2 - y1 + 2 * r);
}

export function createReviewView({ onQueueSize }) {
  const panel = document.getElementById("review-panel");
  const empty = document.getElementById("review-empty");
  const position = document.getElementById("review-position");
  const details = document.getElementById("review-details");
  const actions = document.getElementById("review-actions");
  const tools = document.getElementById("review-tools");
  const last = document.getElementById("review-last");
  const leaseLine = document.getElementById("review-lease");
  const note = document.getElementById("review-note");
  const captured = document.getElementById("review-crop");
  const capturedCaption = document.getElementById("review-crop-caption");
  const golden = document.getElementById("review-golden");
  const difference = document.getElementById("review-diff");
  const goldenFigure = document.getElementById("review-golden-figure");
  const differenceFigure = document.getElementById("review-diff-figure");
  const context = document.getElementById("review-context");
  const productSelect = document.getElementById("review-product");
  const typeSelect = document.getElementById("review-type");

  let item = null; // the shown queue item {defect, inspection, position, crops, lease}
  let pending = 0; // defects awaiting review under the filter
  let mode = "unknown"; // "claim": this key leases what it is shown; "look": it may only look
  let modeKey = null; // the key `mode` was found with
  let lookReason = null; // the message key saying why only a look
  let sides = {}; // decoded crops of the shown item: test, template, difference
  let contextImage = null;
  let generation = 0; // a later item's images win over an earlier one's still loading
  let zoomChoice = null; // null: fitted to each defect
  let blinking = false;
  let blinkTimer = null;
  let blinkGolden = false;
  let busy = false;
  let visible = false;
  let epoch = 0; // counts the queue requests started; see load()
  let products = [];
  const decided = []; // this page's decisions, newest last: what U undoes

  const filterParams = () => ({ product: productSelect.value || undefined, type: typeSelect.value || undefined });
  const filtered = () => Boolean(productSelect.value || typeSelect.value);
  const zoom = () => zoomChoice ?? (item ? fitZoom(captured, item.defect) : ZOOMS[0]);

  async function refreshBadge() {
    try {
      onQueueSize((await pendingReviews({})).pending);
    } catch (err) {
      showError(err, "review");
    }
  }

  // The next item from the service: claimed (leased to this key) when the key may review, else looked at.
  async function fetchQueue(cursor = {}) {
    const params = { ...filterParams(), ...cursor };
    const key = getApiKey();
    if (key !== modeKey) {
      mode = "unknown";
      modeKey = key;
    }
    if (!key) {
      mode = "look";
      lookReason = "review.look_no_key";
      return peekNext(params);
    }
    if (mode !== "look") {
      try {
        const answer = await claimNext(params);
        mode = "claim";
        return answer;
      } catch (err) {
        if (err.status !== 401 && err.status !== 403) throw err;
        mode = "look";
        lookReason = err.status === 403 ? "review.look_no_scope" : "key.refused";
      }
    }
    return peekNext(params);
  }

  function apply(answer) {
    pending = Number(answer?.pending ?? 0);
    const next = answer?.item ?? null;
    const changed = next?.defect.id !== item?.defect.id;
    item = next;
    if (!filtered()) onQueueSize(pending);
    else refreshBadge();
    render(changed);
  }

  // The latest request started wins: an answer to an older one (a poll, a key pressed before) is dropped.
  async function load(cursor) {
    const mine = ++epoch;
    try {
      const answer = await fetchQueue(cursor);
      if (mine === epoch) apply(answer);
      clearError("review");
    } catch (err) {
      showError(err, "review");
    }
  }

  function describeLease() {
    const state = !item ? "" : item.lease ? "mine" : mode === "look" ? "look" : "";
    leaseLine.dataset.state = state;
    if (state === "mine") leaseLine.textContent = t("review.lease_mine", { time: formatTime(new Date(item.lease.expires_at)) });
    else leaseLine.textContent = state === "look" && lookReason ? t(lookReason) : "";
  }

  function render(changed) {
    empty.hidden = item !== null;
    panel.hidden = item === null;
    if (!item) {
      empty.textContent = pending > 0 ? t("review.all_leased", { count: pending }) : t("review.empty");
      position.textContent = "";
      delete panel.dataset.defectId;
      delete panel.dataset.ready;
      return;
    }
    position.textContent = t("review.position", { index: item.position, count: pending });
    describeLease();
    if (!changed && panel.dataset.defectId === item.defect.id) return;
    panel.dataset.defectId = item.defect.id;
    panel.dataset.defectType = item.defect.type;
    delete panel.dataset.ready;
    describe();
    loadImages(item);
  }

  function describe() {
    const { defect, inspection } = item;
    detailsList(details, [
      [t("field.type"), el("span", { class: "type-chip", style: { "--chip": typeColor(defect.type) } }, typeLabel(defect.type))],
      [t("field.confidence"), formatPercent(defect.confidence, 1)],
      [t("field.box_px"), boxText(defect.box_px, 0)],
      [t("field.box_mm"), boxText(defect.box_mm, 2)],
      [t("field.inspection"), el("a", { href: `#board/${inspection.id}` }, inspection.image_id || inspection.id)],
      [t("field.product"), productText(inspection)],
      [t("field.time"), inspectionTimeText(inspection)],
    ]);
    const hasTemplate = Boolean(item.crops.template_url);
    goldenFigure.hidden = !hasTemplate;
    differenceFigure.hidden = !hasTemplate;
    note.hidden = hasTemplate;
    note.textContent = hasTemplate ? "" : t("review.no_template");
    drawTools();
  }

  async function loadImages(shown) {
    const mine = ++generation;
    sides = {};
    contextImage = null;
    for (const canvas of [captured, golden, difference]) {
      fillCanvas(canvas, t("review.loading"));
      delete canvas.dataset.drawn;
    }
    fillCanvas(context);
    const urls = { test: shown.crops.test_url, template: shown.crops.template_url, difference: shown.crops.difference_url };
    const loaded = {};
    let failed = false;
    await Promise.all(
      Object.entries(urls).map(async ([side, url]) => {
        if (!url) return;
        try {
          loaded[side] = await loadImage(url);
        } catch (err) {
          failed = true;
          if (mine === generation) showError(err, "review-image");
        }
      }),
    );
    if (mine !== generation) return;
    sides = loaded;
    if (!failed) clearError("review-image");
    if (!sides.test) fillCanvas(captured, t("review.image_missing"));
    drawSides();
    panel.dataset.ready = shown.defect.id;
    // The whole board only once the operator stays on the defect: a quick walk does not wait for it.
    setTimeout(() => {
      if (mine !== generation) return;
      loadImage(imageUrl(shown.inspection.id))
        .then((image) => {
          if (mine !== generation) return;
          contextImage = image;
          drawContext(context, image, shown);
        })
        .catch(() => fillCanvas(context, t("review.image_missing")));
    }, CONTEXT_DELAY_MS);
  }

  function drawCaptured() {
    if (!item || !sides.test) return;
    const showGolden = blinking && blinkGolden && sides.template;
    drawCrop(captured, showGolden ? sides.template : sides.test, item, zoom());
    captured.dataset.showing = showGolden ? "template" : "test";
    captured.dataset.drawn = item.defect.id;
    capturedCaption.textContent = showGolden ? t("review.blinking_golden") : t("review.captured");
  }

  function drawSides() {
    if (!item) return;
    drawCaptured();
    if (sides.template) drawCrop(golden, sides.template, item, zoom());
    if (sides.difference) drawCrop(difference, sides.difference, item, zoom());
    drawTools();
  }

  function setZoom(value) {
    zoomChoice = value;
    drawSides();
  }

  function zoomBy(step) {
    const index = ZOOMS.indexOf(zoom());
    setZoom(ZOOMS[Math.min(Math.max(index + step, 0), ZOOMS.length - 1)]);
  }

  function setBlinking(on) {
    blinking = on && Boolean(item?.crops.template_url);
    clearInterval(blinkTimer);
    blinkTimer = null;
    blinkGolden = false;
    if (blinking) {
      blinkTimer = setInterval(() => {
        blinkGolden = !blinkGolden;
        drawCaptured();
      }, BLINK_MS);
    }
    drawCaptured();
    drawTools();
  }

  async function decide(decision, newType) {
    if (!item || busy) return;
    busy = true;
    panel.classList.add("busy");
    const shown = item;
    try {
      try {
        await reviewDefect(shown.defect.id, decision, newType);
      } catch (err) {
        showError(err, "review-post");
        last.textContent = t("review.not_saved");
        if (err.status === 409) await load({ after: shown.defect.id }); // another operator holds it: move on
        return;
      }
      clearError("review-post");
      decided.push({ defectId: shown.defect.id, type: shown.defect.type });
      last.textContent = t(`review.done_${decision}`, { type: typeLabel(shown.defect.type), new_type: typeLabel(newType) });
      await load({ after: shown.defect.id });
    } finally {
      busy = false;
      panel.classList.remove("busy");
    }
  }

  async function move(step) {
    if (!item || busy) return;
    busy = true;
    try {
      await load(step > 0 ? { after: item.defect.id } : { before: item.defect.id });
    } finally {
      busy = false;
    }
  }

  // Undo is a request of its own: the service clears the review (the defect is pending again) and leases the
  // defect to this key, which decides it anew; only the reviewer who recorded a decision may undo it.
  async function undo() {
    if (busy) return;
    const previous = decided.pop();
    if (!previous) {
      last.textContent = t("review.nothing_to_undo");
      return;
    }
    busy = true;
    panel.classList.add("busy");
    try {
      await undoReview(previous.defectId);
      clearError("review-post");
      last.textContent = t("review.undone", { type: typeLabel(previous.type) });
      await load({ at: previous.defectId }); // its place and count under the filter shown
    } catch (err) {
      decided.push(previous);
      showError(err, "review-post");
    } finally {
      busy = false;
      panel.classList.remove("busy");
    }
  }

  function onKey(event) {
    if (!visible || isTyping(event) || event.altKey || event.metaKey) return;
    const key = event.key.toLowerCase();
    if (event.ctrlKey) {
      if (key === "z") {
        event.preventDefault();
        undo();
      }
      return;
    }
    let handled = true;
    if (key === "c") decide("confirm");
    else if (key === "r" || key === "x") decide("false_call");
    else if (typeByKey(key)) decide("reclassify", typeByKey(key).value);
    else if (key === "arrowright" || key === "arrowdown" || key === "n") move(1);
    else if (key === "arrowleft" || key === "arrowup" || key === "p") move(-1);
    else if (key === "u" || key === "backspace") undo();
    else if (key === "b") setBlinking(!blinking);
    else if (key === "+" || key === "=") zoomBy(1);
    else if (key === "-" || key === "_") zoomBy(-1);
    else if (key === "0") setZoom(null);
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

  function drawTools() {
    const current = zoom();
    const label = t(zoomChoice === null ? "review.zoom_fit" : "review.zoom", { zoom: current });
    tools.replaceChildren(
      el("button", { type: "button", "data-tool": "zoom-out", title: t("review.zoom_out"), "aria-label": t("review.zoom_out"), onclick: () => zoomBy(-1) }, "−"),
      el("span", { class: "zoom-level", id: "review-zoom", dataset: { zoom: String(current) } }, label),
      el("button", { type: "button", "data-tool": "zoom-in", title: t("review.zoom_in"), "aria-label": t("review.zoom_in"), onclick: () => zoomBy(1) }, "+"),
      el(
        "button",
        {
          type: "button",
          "data-tool": "blink",
          class: blinking ? "toggled" : "",
          "aria-pressed": blinking ? "true" : "false",
          disabled: !item?.crops.template_url,
          onclick: () => setBlinking(!blinking),
        },
        t("review.blink_button"),
      ),
      el("button", { type: "button", "data-tool": "previous", onclick: () => move(-1) }, t("review.previous_button")),
      el("button", { type: "button", "data-tool": "next", onclick: () => move(1) }, t("review.next_button")),
      el("button", { type: "button", "data-tool": "undo", onclick: () => undo() }, t("review.undo_button")),
    );
  }

  function drawFilters() {
    const chosenProduct = productSelect.value;
    productSelect.replaceChildren(
      el("option", { value: "" }, t("stats.all_products")),
      ...products.map((p) => el("option", { value: p.id, selected: p.id === chosenProduct }, p.name || p.id)),
    );
    const chosenType = typeSelect.value;
    typeSelect.replaceChildren(
      el("option", { value: "" }, t("review.all_types")),
      ...DEFECT_TYPES.map((type) => el("option", { value: type.value, selected: type.value === chosenType }, typeLabel(type.value))),
    );
  }

  async function fillProducts() {
    try {
      products = await listProducts();
      drawFilters();
    } catch (err) {
      showError(err, "review-products");
    }
  }

  for (const select of [productSelect, typeSelect]) {
    select.addEventListener("change", () => {
      select.blur(); // the keyboard goes back to the queue
      load({});
    });
  }

  // While shown: the counts, and the lease renewed before it runs out; an empty queue is looked at until
  // something arrives. A look-only page checks that the defect it shows is still pending.
  async function poll() {
    if (busy) return;
    const mine = epoch;
    const current = () => mine === epoch && !busy;
    try {
      if (!item) {
        const look = await peekNext(filterParams());
        if (look.item && mode !== "look" && getApiKey()) {
          if (current()) await load({});
        } else if (current()) {
          apply(look);
        }
      } else if (mode === "claim") {
        const left = item.lease ? new Date(item.lease.expires_at).getTime() - Date.now() : 0;
        if (left < RENEW_BELOW_MS) {
          await load({ at: item.defect.id });
        } else {
          const counts = await pendingReviews(filterParams());
          if (!current()) return;
          pending = counts.pending;
          if (!filtered()) onQueueSize(pending);
          else refreshBadge();
          render(false);
        }
      } else {
        await load({ at: item.defect.id });
      }
      clearError("review");
    } catch (err) {
      showError(err, "review");
    }
  }

  drawActions();
  drawFilters();
  drawTools();
  document.addEventListener("keydown", onKey);
  const poller = new Poller(poll, POLL_MS);
  const background = new Poller(refreshBadge, BACKGROUND_POLL_MS);

  return {
    async show() {
      visible = true;
      background.stop();
      fillProducts();
      await load(item ? { at: item.defect.id } : {}); // what was shown, while it is still available
      poller.stop();
      poller.start();
    },
    hide() {
      visible = false;
      poller.stop();
      setBlinking(false);
      if (mode === "claim" && item?.lease) releaseLease().catch(() => {}); // free for the others at once
      background.start();
    },
    relabel() {
      drawActions();
      drawFilters();
      last.textContent = "";
      if (item) {
        position.textContent = t("review.position", { index: item.position, count: pending });
        describe();
        describeLease();
        drawSides();
        if (contextImage) drawContext(context, contextImage, item);
      } else {
        render(false);
      }
    },
    startBackground() {
      background.start();
    },
  };
}
