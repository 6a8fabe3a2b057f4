// Dashboard entry point: hash routing between the four views, and the API key form.

import { getApiKey, setApiKey } from "./api.js";
import { installBanner } from "./banner.js";
import { createBoardView } from "./board.js";
import { createLiveView } from "./live.js";
import { createReviewView } from "./review.js";
import { createStatsView } from "./stats.js";

function installKeyForm() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const state = document.getElementById("key-state");
  const showState = () => {
    state.textContent = getApiKey() ? "key stored" : "no key: reviews cannot be saved";
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
}

function main() {
  installBanner();
  installKeyForm();
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

  window.addEventListener("hashchange", route);
  views.review.startBackground();
  route();
}

main();
