// Stats view: yield tiles, the defect Pareto by type and the yield trend per hour, for one or all products.

import { getStats, listProducts } from "./api.js";
import { clearError, showError } from "./banner.js";
import { paretoChart, yieldTrendChart } from "./charts.js";
import { el } from "./dom.js";
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

  async function fillProducts() {
    try {
      const products = await listProducts();
      const chosen = productSelect.value;
      productSelect.replaceChildren(
        el("option", { value: "" }, "all products"),
        ...products.map((p) => el("option", { value: p.id, selected: p.id === chosen }, p.name || p.id)),
      );
    } catch (err) {
      showError(err, "stats-products");
    }
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
    const { overall, reviews } = stats;
    const yieldText = overall.total ? `${((100 * overall.passed) / overall.total).toFixed(1)} %` : "–";
    const defectTotal = Object.values(stats.byType).reduce((sum, n) => sum + Number(n), 0);
    summary.replaceChildren(
      tile("yield", yieldText, "yield"),
      tile("inspections", String(overall.total), "total"),
      tile("failed", String(overall.failed), "failed"),
      tile("defects (excl. false calls)", String(defectTotal), "defects"),
      reviews ? tile("awaiting review", String(reviews.pending ?? "–"), "pending") : null,
    );
    pareto.replaceChildren(paretoChart(stats.byType));
    trend.replaceChildren(yieldTrendChart(stats.hours));
  }

  productSelect.addEventListener("change", () => refresh());
  const poller = new Poller(refresh, POLL_MS);
  return {
    show() {
      fillProducts();
      poller.start();
    },
    hide() {
      poller.stop();
    },
  };
}
