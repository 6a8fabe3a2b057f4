// Live view: the latest inspections as cards (overlay, verdict, defect count, timings), refreshed every 1.5 s.
// A lot / panel search narrows the cards to one lot or panel, and opens the lot's printable report.

import { fetchLotReport, listInspections, overlayUrl } from "./api.js";
import { clearError, showError } from "./banner.js";
import { el } from "./dom.js";
import { formatNumber, formatTime, getLanguage, t } from "./i18n.js";
import { showImage } from "./image_cache.js";
import { Poller } from "./poller.js";
import { inspectionTimeText, productText, timingsText, totalMs, traceText, verdictText } from "./records.js";

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
      traceText(inspection) ? el("div", { class: "card-row muted card-trace" }, traceText(inspection)) : null,
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
  const search = document.getElementById("live-search");
  const lotInput = document.getElementById("live-lot");
  const panelInput = document.getElementById("live-panel");
  const reportButton = document.getElementById("live-report");
  let filter = { lot: "", panelId: "" }; // applied with the Search button (or Enter), not on every key

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
    const failed = inspections.filter((i) => i.verdict === "fail").length;
    const counts = { count: formatNumber(inspections.length), failed: formatNumber(failed), time: formatTime(updated) };
    const filtered = filter.lot || filter.panelId;
    summary.textContent = filtered
      ? t("live.summary_filtered", { ...counts, filter: [filter.lot, filter.panelId].filter(Boolean).join(" · ") })
      : inspections.length
        ? t("live.summary", counts)
        : "";
    empty.hidden = inspections.length > 0 || Boolean(filtered);
    list.dataset.lot = filter.lot;
    list.dataset.panel = filter.panelId;
  }

  let asked = 0; // a page asked for before the filter changed is dropped, not drawn over the new one

  async function refresh(force = false) {
    if (paused.checked && !force) return;
    const mine = ++asked;
    let inspections;
    try {
      inspections = await listInspections({ limit: LIVE_LIMIT, lot: filter.lot, panelId: filter.panelId });
      clearError("live");
    } catch (err) {
      if (mine === asked) showError(err, "live");
      return;
    }
    if (mine === asked) render(inspections, new Date());
  }

  search.addEventListener("submit", (event) => {
    event.preventDefault();
    filter = { lot: lotInput.value.trim(), panelId: panelInput.value.trim() };
    reportButton.disabled = !filter.lot;
    refresh(true);
  });

  // Opened in the click itself (a window opened after the fetch would meet the popup blocker), then pointed
  // at the report, fetched with the key: an <a href> could not send it to a closed-reads line.
  reportButton.addEventListener("click", async () => {
    if (!filter.lot) return;
    const win = window.open("", "_blank");
    try {
      const blob = await fetchLotReport(filter.lot, getLanguage());
      const url = URL.createObjectURL(blob);
      if (win) win.location.href = url;
      else window.location.href = url;
      clearError("report");
    } catch (err) {
      if (win) win.close();
      showError(err, "report");
    }
  });

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
