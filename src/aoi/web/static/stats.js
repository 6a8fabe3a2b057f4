// Stats view: yield tiles, the defect Pareto by type and the yield trend per hour, for one or all products,
// and the printable report of the shift running now.

import { fetchShiftReport, getStats, listProducts } from "./api.js";
import { clearError, showError } from "./banner.js";
import { paretoChart, yieldTrendChart } from "./charts.js";
import { el } from "./dom.js";
import { formatNumber, formatPercent, getLanguage, t } from "./i18n.js";
import { Poller } from "./poller.js";

const POLL_MS = 5000;

// GET /api/v1/stats: {inspections: {total, passed, failed, yield}, defects_by_type: {type: n},
//   per_hour: [{hour, total, passed, failed, yield}], per_product: [...], reviews: {pending, ...}}
export function normalizeStats(raw) {
  const counts = (c) => ({ total: Number(c?.total ?? 0), passed: Number(c?.passed ?? 0), failed: Number(c?.failed ?? 0) });
  return {
    overall: counts(raw.inspections),
    hours: (raw.per_hour || []).map((h) => ({ hour: new Date(h.hour), ...counts(h) })),
    byType: raw.defects_by_type || {},
    reviews: raw.reviews ?? null,
  };
}

function tile(label, value, name) {
  return el("div", { class: "tile", dataset: { stat: name } }, el("div", { class: "tile-value" }, value), el("div", { class: "tile-label" }, label));
}

export function createStatsView() {
  const productSelect = document.getElementById("stats-product");
  const summary = document.getElementById("stats-summary");
  const pareto = document.getElementById("pareto-chart");
  const trend = document.getElementById("yield-chart");

  let products = [];
  let shown = null; // the last stats drawn, drawn again as they are on a language switch

  function drawProducts() {
    const chosen = productSelect.value;
    productSelect.replaceChildren(
      el("option", { value: "" }, t("stats.all_products")),
      ...products.map((p) => el("option", { value: p.id, selected: p.id === chosen }, p.name || p.id)),
    );
  }

  async function fillProducts() {
    try {
      products = await listProducts();
      drawProducts();
    } catch (err) {
      showError(err, "stats-products");
    }
  }

  function draw(stats) {
    shown = stats;
    const { overall, reviews } = stats;
    const yieldText = overall.total ? formatPercent(overall.passed / overall.total, 1) : t("value.none");
    const defectTotal = Object.values(stats.byType).reduce((sum, n) => sum + Number(n), 0);
    const pending = reviews?.pending;
    summary.replaceChildren(
      tile(t("stats.yield"), yieldText, "yield"),
      tile(t("stats.inspections"), formatNumber(overall.total), "total"),
      tile(t("stats.failed"), formatNumber(overall.failed), "failed"),
      tile(t("stats.defects"), formatNumber(defectTotal), "defects"),
      reviews ? tile(t("stats.pending"), pending == null ? t("value.none") : formatNumber(pending), "pending") : null,
    );
    pareto.replaceChildren(paretoChart(stats.byType));
    trend.replaceChildren(yieldTrendChart(stats.hours));
  }

  async function refresh() {
    let stats;
    try {
      stats = normalizeStats(await getStats({ product: productSelect.value || undefined }));
      clearError("stats");
    } catch (err) {
      showError(err, "stats");
      return;
    }
    draw(stats);
  }

  productSelect.addEventListener("change", () => refresh());

  // Opened in the click itself (a window opened after the fetch would meet the popup blocker), then pointed
  // at the report of the shift running now, fetched with the key (reads may be closed).
  document.getElementById("stats-shift-report").addEventListener("click", async () => {
    const win = window.open("", "_blank");
    try {
      const url = URL.createObjectURL(await fetchShiftReport(getLanguage()));
      if (win) win.location.href = url;
      else window.location.href = url;
      clearError("shift-report");
    } catch (err) {
      if (win) win.close();
      showError(err, "shift-report");
    }
  });
  const poller = new Poller(refresh, POLL_MS);
  return {
    show() {
      fillProducts();
      poller.start();
    },
    hide() {
      poller.stop();
    },
    relabel() {
      drawProducts();
      if (shown) draw(shown);
    },
  };
}
