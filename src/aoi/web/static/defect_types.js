// The one catalogue of defect classes in the dashboard: keyboard order (keys 1-7), the colour each is drawn
// in everywhere, and its name in each language (the terms a Korean PCB/substrate engineer uses).
// Colours are those of the engine's overlay (aoi.detection.overlay.TYPE_COLOURS_BGR, here as RGB), so a
// marker, a chart bar and the box burnt into the overlay PNG of the same type always agree.

import { getLanguage } from "./i18n.js";

export const DEFECT_TYPES = [
  { value: "open", color: "#ff0000", labels: { en: "open", ko: "단선" } },
  { value: "short", color: "#ffa500", labels: { en: "short", ko: "단락" } },
  { value: "mousebite", color: "#ffd700", labels: { en: "mousebite", ko: "마우스바이트" } },
  { value: "spur", color: "#00c800", labels: { en: "spur", ko: "돌기" } },
  { value: "copper", color: "#0080ff", labels: { en: "copper", ko: "잔동" } }, // spurious (residual) copper
  { value: "pin-hole", color: "#ff00ff", labels: { en: "pin-hole", ko: "핀홀" } },
  { value: "scratch", color: "#ff69b4", labels: { en: "scratch", ko: "스크래치" } },
];

const BY_VALUE = new Map(DEFECT_TYPES.map((t) => [t.value, t]));

export function typeColor(value) {
  return BY_VALUE.get(value)?.color ?? "#cccccc";
}

// The type's name in the chosen language; an unknown type (a newer model's class) shows as the API spells it.
export function typeLabel(value) {
  const labels = BY_VALUE.get(value)?.labels;
  return labels?.[getLanguage()] ?? labels?.en ?? String(value);
}

export function typeByKey(key) {
  const index = Number.parseInt(key, 10);
  return Number.isInteger(index) && index >= 1 && index <= DEFECT_TYPES.length ? DEFECT_TYPES[index - 1] : null;
}
