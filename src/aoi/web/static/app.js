// Dashboard entry point: hash routing between the four views, the API key form and the language switch.

import { getApiKey, setApiKey } from "./api.js";
import { installBanner } from "./banner.js";
import { createBoardView } from "./board.js";
import { DEFECT_TYPES, typeLabel } from "./defect_types.js";
import { el } from "./dom.js";
import { applyStatic, getLanguage, LANGUAGES, languageName, setLanguage, t } from "./i18n.js";
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

function installKeyForm() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const state = document.getElementById("key-state");
  const showState = () => {
    state.textContent = getApiKey() ? t("key.stored") : t("key.missing");
    state.classList.toggle("missing", !getApiKey());
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value);
    input.value = "";
    input.blur();
    showState();
  });
  document.getElementById("key-clear").addEventListener("click", () => {
    setApiKey("");
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
  const keyForm = installKeyForm();
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
