// The room socket: join with a token, keep the last sequence number, reconnect with backoff and
// resume with `since=`, hand events to the page, and match each command to its ack or error.

import { ApiError } from "./api.js";

const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
const COMMAND_TIMEOUT_MS = 15000;
const SUBPROTOCOL = "livecommerce.v1";

export class RoomSocket {
  constructor({ roomId, token, onEvent, onSnapshot, onStatus }) {
    this.roomId = roomId;
    this.token = token;
    this.onEvent = onEvent;
    this.onSnapshot = onSnapshot || (() => {});
    this.onStatus = onStatus || (() => {});
    this.seq = 0;
    this.attempt = 0;
    this.nextId = 1;
    this.pending = new Map();
    this.ws = null;
    this.joined = false;
    this.stopped = false;
    this.timer = null;
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.ws && this.ws.close());
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ token: this.token });
    if (this.seq) query.set("since", String(this.seq));
    return `${scheme}://${location.host}/ws/rooms/${this.roomId}?${query}`;
  }

  start() {
    this.stopped = false;
    this.open();
    return this;
  }

  open() {
    clearTimeout(this.timer);
    this.joined = false;
    this.onStatus(this.attempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.url(), [SUBPROTOCOL]);
    this.ws = ws;
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", (event) => this.closed(ws, event));
  }

  receive(raw) {
    let parsed;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return;
    }
    // the server may batch several messages into one frame as a JSON array
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) this.handle(message);
  }

  handle(message) {
    if (message.type === "ack" || (message.type === "error" && message.id !== undefined)) {
      this.answer(message);
      return;
    }
    if (message.type === "resumed") {
      // the missed events follow in order; nothing was lost
      this.attempt = 0;
      this.joinedNow();
      return;
    }
    if (message.type === "snapshot") {
      this.attempt = 0;
      if (typeof message.seq === "number") this.seq = message.seq;
      this.onSnapshot(message.data || {});
      this.joinedNow();
      return;
    }
    if (typeof message.seq === "number") {
      if (message.seq <= this.seq) return;
      this.seq = message.seq;
    }
    this.onEvent(message.type, message.data || {}, message);
  }

  // Joined (snapshot or resume): say so, and send the commands that waited for the join.
  joinedNow() {
    this.joined = true;
    this.onStatus("connected");
    for (const [id, waiter] of this.pending) if (!waiter.sent) this.transmit(id, waiter);
  }

  transmit(id, waiter) {
    waiter.sent = true;
    this.ws.send(waiter.frame);
  }

  answer(message) {
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.type === "ack") waiter.resolve(message.data || {});
    else {
      const error = message.error || {};
      waiter.reject(new ApiError(0, error.code || "error", error.message || "The request failed.", error.details));
    }
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.joined = false;
    for (const [id, waiter] of this.pending) {
      if (!waiter.sent) continue; // still waiting for the next join, within its own timeout
      clearTimeout(waiter.timer);
      waiter.reject(new ApiError(0, "disconnected", "The connection dropped before the answer came."));
      this.pending.delete(id);
    }
    if (this.stopped) return;
    if (event.code >= 4400 && event.code < 4500) {
      this.stopped = true;
      this.onStatus("closed", event.reason || "The room closed the connection.");
      return;
    }
    if (!navigator.onLine) {
      // the browser's "online" event reconnects at once
      this.onStatus("offline");
      return;
    }
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)] * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this.onStatus("reconnecting");
    this.timer = setTimeout(() => this.open(), delay);
  }

  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.attempt = Math.max(this.attempt, 1);
    this.open();
  }

  // Send a command and wait for its ack (resolves with the ack's data) or error (rejects). A
  // command sent while the socket is joining or rejoining is sent once it has joined (the
  // server reads commands only then), within the same timeout.
  send(type, data = {}) {
    if (this.stopped) {
      return Promise.reject(new ApiError(0, "disconnected", "Not connected to the room right now. Try again in a moment."));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const waiter = this.pending.get(id);
        this.pending.delete(id);
        reject(
          waiter && !waiter.sent
            ? new ApiError(0, "disconnected", "Not connected to the room right now. Try again in a moment.")
            : new ApiError(0, "timeout", "No answer from the room. Try again."),
        );
      }, COMMAND_TIMEOUT_MS);
      const waiter = { resolve, reject, timer, frame: JSON.stringify({ id, type, data }), sent: false };
      this.pending.set(id, waiter);
      if (this.joined) this.transmit(id, waiter);
    });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }
}
