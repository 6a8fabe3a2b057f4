// Two small SVG charts drawn by hand (no chart library: the line machines have no internet and no build step).

import { typeColor, typeLabel } from "./defect_types.js";
import { svg } from "./dom.js";
import { formatDateTime, formatHour, formatNumber, formatPercent, t } from "./i18n.js";

const WIDTH = 560;
const HEIGHT = 300;
const MARGIN = { top: 16, right: 48, bottom: 56, left: 48 };

// Axis for counts: whole-number ticks at a 1/2/5 x 10^k step, about four of them, the top one >= maxValue.
function countTicks(maxValue) {
  const rough = Math.max(maxValue, 1) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = Math.max(1, [1, 2, 5, 10].map((s) => s * magnitude).find((v) => v >= rough));
  const top = Math.max(step, Math.ceil(maxValue / step) * step);
  const ticks = [];
  for (let v = 0; v <= top; v += step) ticks.push(v);
  return ticks;
}

const PERCENT_TICKS = [0, 25, 50, 75, 100];
const percentTick = (v) => formatPercent(v / 100, 0);
const countTick = (v) => formatNumber(v);

function frame(label) {
  return svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart-svg", role: "img", "aria-label": label });
}

// Ticks on the left axis also draw the grid; the right axis only labels.
function yAxis(root, ticks, format, side) {
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const top = ticks[ticks.length - 1];
  for (const value of ticks) {
    const y = MARGIN.top + plotH - (plotH * value) / top;
    if (side === "left") root.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y, y2: y, class: "grid" }));
    const x = side === "left" ? MARGIN.left - 6 : WIDTH - MARGIN.right + 6;
    root.append(svg("text", { x, y: y + 4, "text-anchor": side === "left" ? "end" : "start", class: "tick" }, format(value)));
  }
  return top;
}

function emptyChart(root, message) {
  root.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "chart-empty" }, message));
  return root;
}

// counts: {type: n}. Bars sorted high to low with the cumulative share as a line (the Pareto view).
export function paretoChart(counts) {
  const entries = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const root = frame(t("chart.pareto_label"));
  if (!entries.length) return emptyChart(root, t("chart.no_defects"));
  const total = entries.reduce((sum, [, n]) => sum + n, 0);

  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotW / entries.length;
  const barW = Math.min(slot * 0.7, 64);
  const maxCount = yAxis(root, countTicks(entries[0][1]), countTick, "left");
  yAxis(root, PERCENT_TICKS, percentTick, "right");
  let cumulative = 0;
  const points = [];
  entries.forEach(([type, n], i) => {
    const cx = MARGIN.left + slot * i + slot / 2;
    const h = (plotH * n) / maxCount;
    const bar = svg(
      "rect",
      { x: cx - barW / 2, y: MARGIN.top + plotH - h, width: barW, height: h, fill: typeColor(type), class: "pareto-bar", "data-type": type, "data-count": n },
      svg("title", {}, t("chart.bar_title", { type: typeLabel(type), count: formatNumber(n), share: formatPercent(n / total, 1) })),
    );
    root.append(bar);
    root.append(svg("text", { x: cx, y: MARGIN.top + plotH - h - 4, "text-anchor": "middle", class: "bar-value" }, formatNumber(n)));
    root.append(svg("text", { x: cx, y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle", class: "tick" }, typeLabel(type)));
    cumulative += n;
    points.push([cx, MARGIN.top + plotH - (plotH * cumulative) / total]);
  });
  root.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), class: "pareto-line" }));
  for (const [x, y] of points) root.append(svg("circle", { cx: x, cy: y, r: 3, class: "pareto-point" }));
  return root;
}

// hours: [{hour: Date, total, passed}] in time order. Yield in percent per hour, with the volume as faint bars.
export function yieldTrendChart(hours) {
  const root = frame(t("chart.trend_label"));
  if (!hours.length) return emptyChart(root, t("chart.no_inspections"));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotW / hours.length;
  yAxis(root, PERCENT_TICKS, percentTick, "left");
  const maxTotal = yAxis(root, countTicks(Math.max(...hours.map((h) => h.total))), countTick, "right");
  const labelEvery = Math.ceil(hours.length / 12);
  const points = hours.map((h, i) => {
    const cx = MARGIN.left + slot * i + slot / 2;
    const volumeH = (plotH * h.total) / maxTotal;
    const barW = Math.min(slot * 0.7, 48);
    root.append(svg("rect", { x: cx - barW / 2, y: MARGIN.top + plotH - volumeH, width: barW, height: volumeH, class: "volume-bar" }));
    if (i % labelEvery === 0) {
      root.append(svg("text", { x: cx, y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle", class: "tick" }, formatHour(h.hour)));
    }
    const ratio = h.total ? h.passed / h.total : 0;
    return { x: cx, y: MARGIN.top + plotH - plotH * ratio, ratio, h };
  });
  root.append(svg("polyline", { points: points.map((p) => `${p.x},${p.y}`).join(" "), class: "yield-line" }));
  for (const p of points) {
    root.append(
      svg(
        "circle",
        { cx: p.x, cy: p.y, r: 4, class: "yield-point", "data-yield": p.ratio.toFixed(4) },
        svg(
          "title",
          {},
          t("chart.point_title", { time: formatDateTime(p.h.hour), yield: formatPercent(p.ratio, 1), count: p.h.total }),
        ),
      ),
    );
  }
  root.append(svg("text", { x: MARGIN.left, y: HEIGHT - 8, class: "axis-note" }, t("chart.axis_note")));
  return root;
}
