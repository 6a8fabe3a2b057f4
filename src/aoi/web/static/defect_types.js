// The defect types, read once from the service's catalogue (GET /api/v1/defect-types, built from
// aoi.schema.DEFECT_CATALOGUE): review-key order, the colour each is drawn in everywhere (the same as the
// boxes burnt into the overlay PNG), its review hotkey and its name in each language. The dashboard keeps
// no copy of its own, so a type added to the catalogue appears here with nothing else to edit.

import { getLanguage } from "./i18n.js";

async function loadCatalogue() {
  try {
    const response = await fetch("/api/v1/defect-types", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return await response.json();
  } catch (err) {
    // Without the catalogue, types still show as the API spells them, in grey; the banner reports the outage.
    console.error("defect-type catalogue unavailable:", err);
    return [];
  }
}

export const DEFECT_TYPES = await loadCatalogue();

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
  return DEFECT_TYPES.find((type) => type.hotkey === String(key)) ?? null;
}
