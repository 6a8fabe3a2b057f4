// Defect classes in keyboard order (keys 1-7) with the colour each is drawn in everywhere in the dashboard.
// Colours are those of the engine's overlay (aoi.detection.overlay.TYPE_COLOURS_BGR, here as RGB), so a
// marker, a chart bar and the box burnt into the overlay PNG of the same type always agree.

export const DEFECT_TYPES = [
  { value: "open", label: "open", color: "#ff0000" },
  { value: "short", label: "short", color: "#ffa500" },
  { value: "mousebite", label: "mousebite", color: "#ffd700" },
  { value: "spur", label: "spur", color: "#00c800" },
  { value: "copper", label: "copper", color: "#0080ff" },
  { value: "pin-hole", label: "pin-hole", color: "#ff00ff" },
  { value: "scratch", label: "scratch", color: "#ff69b4" },
];

const BY_VALUE = new Map(DEFECT_TYPES.map((t) => [t.value, t]));

export function typeColor(value) {
  return BY_VALUE.get(value)?.color ?? "#cccccc";
}

export function typeByKey(key) {
  const index = Number.parseInt(key, 10);
  return Number.isInteger(index) && index >= 1 && index <= DEFECT_TYPES.length ? DEFECT_TYPES[index - 1] : null;
}
