// The room chat as every page shows it: a list that follows new messages, and the send form.

import { errorText, t } from "./i18n.js";
import { $, busy, h, say } from "./ui.js";

const KEEP = 200;

export class ChatView {
  // `tools(message)` may return buttons shown next to a message (the console's moderation).
  constructor(list, { tools } = {}) {
    this.list = list;
    this.tools = tools;
    this.messages = new Map();
  }

  load(messages) {
    this.list.replaceChildren();
    this.messages.clear();
    for (const message of messages) this.add(message);
  }

  // Draw every kept message again (their tools change with the page's language).
  redraw() {
    this.load([...this.messages.values()]);
  }

  add(message) {
    if (this.list.querySelector(`[data-message-id="${message.id}"]`)) return;
    this.messages.set(message.id, message);
    const item = h("li", { dataset: { messageId: message.id, userId: message.user_id } });
    // the badge is the server's word on the sender's role, whatever their name says
    if (message.badge) item.append(h("span", { class: `role ${message.badge}`, text: t(`chat.badge.${message.badge}`) }));
    item.append(h("span", { class: "who", text: message.display_name }),
      h("span", { class: "text", text: message.text }));
    const tools = this.tools && this.tools(message);
    if (tools) item.append(h("span", { class: "tools" }, tools));
    this.append(item);
  }

  note(text) {
    this.append(h("li", { class: "system", text }));
  }

  remove(messageId) {
    this.messages.delete(messageId);
    const item = this.list.querySelector(`[data-message-id="${messageId}"]`);
    if (item) item.remove();
  }

  append(item) {
    const list = this.list;
    const following = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    while (list.children.length > KEEP) {
      this.messages.delete(Number(list.firstElementChild.dataset.messageId));
      list.firstElementChild.remove();
    }
    if (following) list.scrollTop = list.scrollHeight;
  }
}

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
      say(status, errorText(error), "error");
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
