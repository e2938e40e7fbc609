// Likes: the heart button with floating hearts, taps batched into one `like` command at a
// time, and the room's running total (which only grows, so the highest seen is the truth).

import { number } from "./format.js";
import { h } from "./ui.js";

const SEND_EVERY_MS = 400;
const MAX_TAPS_PER_SEND = 50; // the server's limit per command
const HEART_MS = 1600;

export class Likes {
  constructor({ button, count, hearts, send }) {
    this.count = count;
    this.hearts = hearts;
    this.send = send;
    this.total = 0;
    this.unsent = 0;
    this.timer = null;
    if (button) button.addEventListener("click", () => this.tap());
  }

  tap() {
    this.unsent += 1;
    this.float();
    this.render();
    if (!this.timer) this.timer = setTimeout(() => this.flush(), SEND_EVERY_MS);
  }

  async flush() {
    this.timer = null;
    const taps = Math.min(this.unsent, MAX_TAPS_PER_SEND);
    if (!taps) return;
    this.unsent -= taps;
    try {
      await this.send("like", { count: taps });
    } catch {
      // a refused or lost send is tried again with the next batch
      this.unsent += taps;
    }
    if (this.unsent && !this.timer) this.timer = setTimeout(() => this.flush(), SEND_EVERY_MS);
  }

  // The room's total from the snapshot or a `likes` event.
  seen(total) {
    this.total = Math.max(this.total, total || 0);
    this.render();
  }

  render() {
    if (this.count) this.count.textContent = number(this.total + this.unsent);
  }

  float() {
    if (!this.hearts) return;
    const heart = h("span", { class: "heart", text: "♥" });
    heart.style.left = `${10 + Math.random() * 60}%`;
    heart.style.setProperty("--drift", `${Math.round(Math.random() * 40 - 20)}px`);
    this.hearts.append(heart);
    setTimeout(() => heart.remove(), HEART_MS);
  }
}
