// Runs an async task now and then again `intervalMs` after each run finishes (never two runs at once).

export class Poller {
  constructor(task, intervalMs) {
    this.task = task;
    this.intervalMs = intervalMs;
    this.timer = null;
    this.active = false;
  }

  start() {
    if (this.active) return;
    this.active = true;
    this.#tick();
  }

  stop() {
    this.active = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  async #tick() {
    if (!this.active) return;
    try {
      await this.task();
    } finally {
      if (this.active) this.timer = setTimeout(() => this.#tick(), this.intervalMs);
    }
  }
}
