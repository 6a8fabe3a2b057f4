// Live view: the latest inspections as cards (overlay, verdict, defect count, timings), refreshed every 1.5 s.

import { listInspections, overlayUrl } from "./api.js";
import { clearError, showError } from "./banner.js";
import { el } from "./dom.js";
import { formatNumber, formatTime, t } from "./i18n.js";
import { showImage } from "./image_cache.js";
import { Poller } from "./poller.js";
import { inspectionTimeText, productText, timingsText, totalMs, verdictText } from "./records.js";

const LIVE_LIMIT = 24;
const POLL_MS = 1500;

function verdictBadge(verdict) {
  return el("span", { class: `badge verdict-${verdict}` }, verdictText(verdict));
}

function inspectionCard(inspection) {
  const ms = totalMs(inspection);
  const defects = inspection.defects || [];
  const image = el("img", { class: "overlay", alt: t("live.overlay_alt", { id: inspection.id }) });
  const card = el(
    "a",
    { class: "inspection-card", href: `#board/${inspection.id}`, dataset: { id: inspection.id, verdict: inspection.verdict } },
    el("div", { class: "thumb" }, image, el("span", { class: "thumb-missing" }, t("live.overlay_missing"))),
    el(
      "div",
      { class: "card-body" },
      el(
        "div",
        { class: "card-row" },
        verdictBadge(inspection.verdict),
        el("span", { class: "defect-count" }, t("live.defects", { count: defects.length })),
      ),
      el("div", { class: "card-row muted" }, el("span", {}, productText(inspection)), el("span", {}, inspectionTimeText(inspection))),
      el(
        "div",
        { class: "card-row muted timings", title: timingsText(inspection) },
        ms === null ? t("value.none") : t("live.total_ms", { ms: formatNumber(ms, 1) }),
      ),
      el("div", { class: "card-id muted" }, inspection.image_id || inspection.id),
    ),
  );
  // Fetched with the API key (closed reads); a refused or broken image shows "overlay unavailable".
  showImage(image, overlayUrl(inspection.id)).catch(() => card.classList.add("overlay-missing"));
  return card;
}

export function createLiveView() {
  const list = document.getElementById("live-list");
  const empty = document.getElementById("live-empty");
  const summary = document.getElementById("live-summary");
  const paused = document.getElementById("live-paused");

  // Cards are keyed by id and reused, so images already loaded do not flicker on every poll.
  const cards = new Map();
  let shown = null; // {inspections, updated}: what is on screen, re-rendered as it is on a language switch

  function render(inspections, updated) {
    shown = { inspections, updated };
    const wanted = new Set(inspections.map((i) => i.id));
    for (const [id, card] of cards) {
      if (!wanted.has(id)) {
        card.remove();
        cards.delete(id);
      }
    }
    const ordered = inspections.map((inspection) => {
      if (!cards.has(inspection.id)) cards.set(inspection.id, inspectionCard(inspection));
      return cards.get(inspection.id);
    });
    ordered.forEach((card, index) => {
      if (list.children[index] !== card) list.insertBefore(card, list.children[index] || null);
    });
    empty.hidden = inspections.length > 0;
    const failed = inspections.filter((i) => i.verdict === "fail").length;
    summary.textContent = inspections.length
      ? t("live.summary", { count: formatNumber(inspections.length), failed: formatNumber(failed), time: formatTime(updated) })
      : "";
  }

  async function refresh() {
    if (paused.checked) return;
    let inspections;
    try {
      inspections = await listInspections({ limit: LIVE_LIMIT });
      clearError("live");
    } catch (err) {
      showError(err, "live");
      return;
    }
    render(inspections, new Date());
  }

  const poller = new Poller(refresh, POLL_MS);
  return {
    show() {
      poller.start();
    },
    hide() {
      poller.stop();
    },
    relabel() {
      for (const card of cards.values()) card.remove();
      cards.clear();
      if (shown) render(shown.inspections, shown.updated);
    },
  };
}
