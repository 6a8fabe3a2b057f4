// Defect classes in keyboard order (keys 1-7) with the colour each is drawn in everywhere in the dashboard.

export const DEFECT_TYPES = [
  { value: "open", label: "open", color: "#e6194b" },
  { value: "short", label: "short", color: "#f58231" },
  { value: "mousebite", label: "mousebite", color: "#ffe119" },
  { value: "spur", label: "spur", color: "#3cb44b" },
  { value: "copper", label: "copper", color: "#42d4f4" },
  { value: "pin-hole", label: "pin-hole", color: "#4363d8" },
  { value: "scratch", label: "scratch", color: "#f032e6" },
];

const BY_VALUE = new Map(DEFECT_TYPES.map((t) => [t.value, t]));

export function typeColor(value) {
  return BY_VALUE.get(value)?.color ?? "#cccccc";
}

export function typeByKey(key) {
  const index = Number.parseInt(key, 10);
  return Number.isInteger(index) && index >= 1 && index <= DEFECT_TYPES.length ? DEFECT_TYPES[index - 1] : null;
}
