// Dashboard entry point: hash routing between the four views, the API key form and the language switch.

import { getApiKey, setApiKey } from "./api.js";
import { dismissError, installBanner } from "./banner.js";
import { createBoardView } from "./board.js";
import { DEFECT_TYPES, typeLabel } from "./defect_types.js";
import { el } from "./dom.js";
import { applyStatic, getLanguage, LANGUAGES, languageName, setLanguage, t } from "./i18n.js";
import { clearImages } from "./image_cache.js";
import { createLiveView } from "./live.js";
import { createReviewView } from "./review.js";
import { createStatsView } from "./stats.js";

// Fills the fixed text of index.html (data-i18n*) in the chosen language; `<html lang>` follows.
function translatePage() {
  applyStatic(document, {
    command: "`aoi keys create`",
    types: DEFECT_TYPES.map((type) => typeLabel(type.value)).join(", "),
  });
}

// What the key box says after the API refused the key (or its absence): 401 without a key, 401 with one
// (unknown, revoked or expired), 403 (a valid key without the scope). Cleared when the key changes.
function refusalMessage({ status, hasKey }) {
  if (status === 403) return "key.lacks_scope";
  return hasKey ? "key.refused" : "key.needed";
}

// `onChange` runs after a key is saved or forgotten, so the views fetch again with it.
function installKeyForm(onChange) {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const state = document.getElementById("key-state");
  let refusal = null; // the last aoi:auth-refused detail, until the key changes
  const showState = () => {
    const message = refusal ? refusalMessage(refusal) : getApiKey() ? "key.stored" : "key.missing";
    state.textContent = t(message);
    state.dataset.state = message.replace("key.", "");
    state.classList.toggle("missing", Boolean(refusal) || !getApiKey());
    form.classList.toggle("attention", Boolean(refusal));
  };
  const changed = () => {
    refusal = null;
    dismissError(); // it was about the previous key; the views fetch again and say what still fails
    clearImages();
    showState();
    onChange();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value);
    input.value = "";
    input.blur();
    changed();
  });
  document.getElementById("key-clear").addEventListener("click", () => {
    setApiKey("");
    changed();
  });
  window.addEventListener("aoi:auth-refused", (event) => {
    refusal = event.detail;
    showState();
  });
  showState();
  return { relabel: showState };
}

// Switching re-renders in place (no reload): the page's fixed text, then each view from the data it holds.
function installLanguageSwitch(relabelAll) {
  const select = document.getElementById("lang-select");
  select.replaceChildren(
    ...LANGUAGES.map((lang) => el("option", { value: lang, lang, selected: lang === getLanguage() }, languageName(lang))),
  );
  select.addEventListener("change", () => {
    setLanguage(select.value);
    translatePage();
    relabelAll();
  });
}

function main() {
  translatePage();
  installBanner();
  const keyForm = installKeyForm(() => refetchAll());
  const reviewCount = document.getElementById("review-count");
  const views = {
    live: createLiveView(),
    review: createReviewView({
      onQueueSize(size) {
        reviewCount.hidden = size === 0;
        reviewCount.textContent = String(size);
      },
    }),
    board: createBoardView(),
    stats: createStatsView(),
  };
  let active = null;

  function route() {
    const [name, param] = window.location.hash.replace(/^#/, "").split("/");
    const next = views[name] ? name : "live";
    if (active && active !== next) views[active].hide();
    for (const key of Object.keys(views)) document.getElementById(`view-${key}`).hidden = key !== next;
    for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === next);
    active = next;
    views[next].show(param ? decodeURIComponent(param) : undefined);
    document.body.dataset.view = next;
  }

  // A new key: draw again what is shown (its images are fetched again) and show the active view afresh.
  function refetchAll() {
    for (const view of Object.values(views)) view.relabel();
    if (active) views[active].hide();
    active = null;
    route();
  }

  installLanguageSwitch(() => {
    keyForm.relabel();
    for (const view of Object.values(views)) view.relabel();
    document.body.dataset.lang = getLanguage();
  });
  document.body.dataset.lang = getLanguage();
  window.addEventListener("hashchange", route);
  views.review.startBackground();
  route();
}

main();
