// Two small SVG charts drawn by hand (no chart library: the line machines have no internet and no build step).

import { typeColor } from "./defect_types.js";
import { svg } from "./dom.js";

const WIDTH = 560;
const HEIGHT = 300;
const MARGIN = { top: 16, right: 48, bottom: 56, left: 48 };

function niceMax(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const steps = [1, 2, 2.5, 5, 10];
  return steps.map((s) => s * magnitude).find((v) => v >= value) ?? 10 * magnitude;
}

function frame(label) {
  return svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart-svg", role: "img", "aria-label": label });
}

function yAxis(root, maxValue, format, x, anchor) {
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const value = (maxValue * i) / 4;
    const y = MARGIN.top + plotH - (plotH * i) / 4;
    if (anchor === "end") root.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y, y2: y, class: "grid" }));
    root.append(svg("text", { x, y: y + 4, "text-anchor": anchor, class: "tick" }, format(value)));
  }
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
  const root = frame("defects by type, Pareto chart");
  if (!entries.length) return emptyChart(root, "no defects yet");
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  const maxCount = niceMax(entries[0][1]);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotW / entries.length;
  const barW = Math.min(slot * 0.7, 64);
  yAxis(root, maxCount, (v) => String(Math.round(v)), MARGIN.left - 6, "end");
  yAxis(root, 100, (v) => `${Math.round(v)}%`, WIDTH - MARGIN.right + 6, "start");
  let cumulative = 0;
  const points = [];
  entries.forEach(([type, n], i) => {
    const cx = MARGIN.left + slot * i + slot / 2;
    const h = (plotH * n) / maxCount;
    const bar = svg(
      "rect",
      { x: cx - barW / 2, y: MARGIN.top + plotH - h, width: barW, height: h, fill: typeColor(type), class: "pareto-bar", "data-type": type, "data-count": n },
      svg("title", {}, `${type}: ${n} (${((100 * n) / total).toFixed(1)} %)`),
    );
    root.append(bar);
    root.append(svg("text", { x: cx, y: MARGIN.top + plotH - h - 4, "text-anchor": "middle", class: "bar-value" }, String(n)));
    root.append(svg("text", { x: cx, y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle", class: "tick" }, type));
    cumulative += n;
    points.push([cx, MARGIN.top + plotH - (plotH * cumulative) / total]);
  });
  root.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), class: "pareto-line" }));
  for (const [x, y] of points) root.append(svg("circle", { cx: x, cy: y, r: 3, class: "pareto-point" }));
  return root;
}

// hours: [{hour: Date, total, passed}] in time order. Yield in percent per hour, with the volume as faint bars.
export function yieldTrendChart(hours) {
  const root = frame("yield per hour");
  if (!hours.length) return emptyChart(root, "no inspections yet");
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotW / hours.length;
  const maxTotal = niceMax(Math.max(...hours.map((h) => h.total)));
  yAxis(root, 100, (v) => `${Math.round(v)}%`, MARGIN.left - 6, "end");
  yAxis(root, maxTotal, (v) => String(Math.round(v)), WIDTH - MARGIN.right + 6, "start");
  const labelEvery = Math.ceil(hours.length / 12);
  const points = hours.map((h, i) => {
    const cx = MARGIN.left + slot * i + slot / 2;
    const volumeH = (plotH * h.total) / maxTotal;
    root.append(svg("rect", { x: cx - slot * 0.35, y: MARGIN.top + plotH - volumeH, width: slot * 0.7, height: volumeH, class: "volume-bar" }));
    if (i % labelEvery === 0) {
      const text = `${String(h.hour.getHours()).padStart(2, "0")}:00`;
      root.append(svg("text", { x: cx, y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle", class: "tick" }, text));
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
        svg("title", {}, `${p.h.hour.toLocaleString()}: ${(p.ratio * 100).toFixed(1)} % of ${p.h.total}`),
      ),
    );
  }
  root.append(svg("text", { x: MARGIN.left, y: HEIGHT - 8, class: "axis-note" }, "line: yield %  ·  bars: inspections"));
  return root;
}
