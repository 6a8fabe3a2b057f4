// One error banner for the whole page: API failures are shown, never swallowed, and cleared once things work.

const banner = () => document.getElementById("error-banner");

let currentSource = null;

export function showError(error, source = "general") {
  const text = error instanceof Error ? error.message : String(error);
  document.getElementById("error-text").textContent = text;
  banner().hidden = false;
  banner().dataset.source = source;
  currentSource = source;
}

// Clears the banner only if it shows an error from `source`, so a poll that works does not hide another failure.
export function clearError(source = "general") {
  if (currentSource === source) {
    banner().hidden = true;
    currentSource = null;
  }
}

// Hides the banner whatever it shows (the operator dismissed it, or changed the key it was about).
export function dismissError() {
  banner().hidden = true;
  currentSource = null;
}

export function installBanner() {
  document.getElementById("error-dismiss").addEventListener("click", dismissError);
}
