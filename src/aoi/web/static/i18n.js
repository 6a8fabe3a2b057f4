// The chosen language and everything that depends on it: messages, plurals, times and numbers.
// The choice is kept in localStorage; without one, Korean when the browser prefers it, English otherwise.

import { LANGUAGE_NAMES, MESSAGES } from "./messages.js";

export const LANGUAGES = Object.keys(MESSAGES);
const LANG_STORAGE = "aoi.lang";
const FALLBACK = "en";
// Attributes translated from `data-i18n-<attr>="key"`; text content comes from `data-i18n="key"`.
const ATTRIBUTES = ["placeholder", "title", "aria-label", "alt"];

function storedLanguage() {
  try {
    return localStorage.getItem(LANG_STORAGE);
  } catch {
    return null;
  }
}

function browserLanguage() {
  const preferred = (navigator.languages && navigator.languages[0]) || navigator.language || "";
  return preferred.toLowerCase().startsWith("ko") ? "ko" : "en";
}

let current = LANGUAGES.includes(storedLanguage()) ? storedLanguage() : browserLanguage();

export function getLanguage() {
  return current;
}

export function languageName(lang) {
  return LANGUAGE_NAMES[lang] ?? lang;
}

// Remembers the choice; the caller re-renders (applyStatic and each view's relabel).
export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) throw new Error(`unknown language ${lang}`);
  current = lang;
  try {
    localStorage.setItem(LANG_STORAGE, lang);
  } catch {
    // private mode: the choice lasts for this page only
  }
}

function lookup(key) {
  const entry = MESSAGES[current][key] ?? MESSAGES[FALLBACK][key];
  if (entry === undefined) throw new Error(`no message ${key}`);
  return entry;
}

function fill(template, params) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// t("live.defects", {count: 3}): a plural entry is chosen by `count`, then placeholders are filled.
export function t(key, params = {}) {
  let entry = lookup(key);
  if (typeof entry === "object") {
    const category = new Intl.PluralRules(current).select(Number(params.count ?? 0));
    entry = entry[category] ?? entry.other;
  }
  return fill(entry, params);
}

// Like t(), but placeholders may be DOM nodes (a <code> inside a sentence): returns nodes and strings.
export function tParts(key, nodes) {
  return t(key)
    .split(/(\{\w+\})/)
    .filter((part) => part !== "")
    .map((part) => {
      const name = part.match(/^\{(\w+)\}$/)?.[1];
      return name && nodes[name] ? nodes[name] : part;
    });
}

// grouping=false for coordinates in a list ("[1200.50, 3.00]", not "[1,200.50, 3.00]").
export function formatNumber(value, digits = 0, grouping = true) {
  const options = { minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: grouping };
  return new Intl.NumberFormat(current, options).format(value);
}

export function formatPercent(ratio, digits = 1) {
  return new Intl.NumberFormat(current, {
    style: "percent",
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(ratio);
}

// 24-hour clock in both languages. hourCycle "h23" rather than hour12: false, which some engines
// have mapped to "h24" (midnight as 24:00).
const TIME = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
const HOUR = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
const DATE_TIME = { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };

export function formatTime(date) {
  return new Intl.DateTimeFormat(current, TIME).format(date);
}

export function formatHour(date) {
  return new Intl.DateTimeFormat(current, HOUR).format(date);
}

export function formatDateTime(date) {
  return new Intl.DateTimeFormat(current, DATE_TIME).format(date);
}

// Translates the page's fixed text: `data-i18n` (text, `{slot}` filled by the element's own
// `data-slot` children, e.g. a <code>), `data-i18n-<attr>` (attributes); `params` fill the rest.
export function applyStatic(root = document, params = {}) {
  document.documentElement.lang = current;
  document.title = t("page.title");
  for (const node of root.querySelectorAll("[data-i18n]")) {
    node.i18nSlots ??= Object.fromEntries([...node.querySelectorAll("[data-slot]")].map((s) => [s.dataset.slot, s]));
    const parts = tParts(node.dataset.i18n, node.i18nSlots).map((p) => (typeof p === "string" ? fill(p, params) : p));
    node.replaceChildren(...parts);
  }
  for (const attr of ATTRIBUTES) {
    for (const node of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      node.setAttribute(attr, t(node.getAttribute(`data-i18n-${attr}`), params));
    }
  }
}
