// The room chat as every page shows it: a list that follows new messages, and the send form.

import { $, busy, h, say } from "./ui.js";

const KEEP = 200;

export class ChatView {
  // `tools(message)` may return buttons shown next to a message (the console's moderation).
  constructor(list, { tools } = {}) {
    this.list = list;
    this.tools = tools;
  }

  load(messages) {
    this.list.replaceChildren();
    for (const message of messages) this.add(message);
  }

  add(message) {
    if (this.list.querySelector(`[data-message-id="${message.id}"]`)) return;
    const item = h("li", { dataset: { messageId: message.id, userId: message.user_id } },
      h("span", { class: "who", text: message.display_name }),
      h("span", { class: "text", text: message.text }));
    const tools = this.tools && this.tools(message);
    if (tools) item.append(h("span", { class: "tools" }, tools));
    this.append(item);
  }

  note(text) {
    this.append(h("li", { class: "system", text }));
  }

  remove(messageId) {
    const item = this.list.querySelector(`[data-message-id="${messageId}"]`);
    if (item) item.remove();
  }

  append(item) {
    const list = this.list;
    const following = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    while (list.children.length > KEEP) list.firstElementChild.remove();
    if (following) list.scrollTop = list.scrollHeight;
  }
}

const REFUSALS = {
  muted: "You are muted in this room for now.",
  slow_mode: "Slow mode is on: wait a little before the next message.",
  blocked_content: "That message contains a word this room does not allow.",
  rate_limited: "You are sending messages too fast.",
};

// Send what is typed in `form` over the room socket and say why when it is refused.
export function chatForm(form, status, room) {
  const input = $("input[name=text]", form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(status, "");
    try {
      await busy(form, () => room.send("chat.send", { text: input.value }));
      input.value = "";
    } catch (error) {
      say(status, REFUSALS[error.code] || error.message, "error");
    }
    input.focus();
  });
}

// Apply a room event that concerns chat; false when the event is about something else.
export function chatEvent(view, type, data) {
  if (type === "chat.message") view.add(data);
  else if (type === "chat.deleted") view.remove(data.message_id);
  else return false;
  return true;
}
