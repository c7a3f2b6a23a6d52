/**
 * <herald-bell>: a bell with an unread badge and a panel of the user's notifications.
 *
 * Attributes: `token-url` (a URL of your backend answering a POST with `{"token": ...}` for
 * the signed-in user), `base-url` (where Herald is, default this origin), `page-size`
 * (default 20), `poll-interval` (seconds between polls when streaming is blocked, default 15).
 * Or set `.client` to a HeraldClient before the element is connected.
 *
 * Titles and bodies are only ever put in the page as text nodes: a notification is data
 * from another service, never markup.
 */

import { HeraldClient, isNewer } from "./client.js";

const STYLESHEET = new URL("./bell.css", import.meta.url).href;
const STATE_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  polling: "Live (polling)",
  offline: "Offline, retrying",
};

const TEMPLATE = document.createElement("template");
TEMPLATE.innerHTML = `
  <link rel="stylesheet" href="${STYLESHEET}">
  <button class="bell" part="button" type="button" aria-haspopup="dialog" aria-expanded="false"
          aria-controls="panel" aria-label="Notifications">
    <svg viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z"/>
    </svg>
    <span class="badge" part="badge" hidden></span>
    <span class="dot" part="state" aria-hidden="true"></span>
  </button>
  <section id="panel" class="panel" part="panel" role="dialog" aria-label="Notifications" hidden>
    <header>
      <h2 tabindex="-1">Notifications</h2>
      <span class="state" role="status"></span>
      <button class="read-all" type="button">Mark all read</button>
    </header>
    <button class="alerts" type="button" hidden>Show urgent notifications on the desktop</button>
    <ul class="list" aria-label="Notifications, newest first"></ul>
    <p class="empty" hidden>Nothing yet.</p>
    <p class="error" role="alert" hidden></p>
    <div class="sentinel" aria-hidden="true"></div>
  </section>`;

function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

export class HeraldBell extends HTMLElement {
  constructor() {
    super();
    this.client = null;
    this.ownsClient = false;
    this.items = new Map();
    // The unread count is Herald's count, exact as of cursor `countsAt`, plus the unread
    // notifications that arrived after that cursor; so each is counted exactly once, in
    // whichever order the list, the counts and the events arrive.
    this.countsAt = null;
    this.baseUnread = 0;
    this.newerUnread = new Set();
    this.nextCursor = null;
    this.loading = false;
    this.started = false;
    this.root = this.attachShadow({ mode: "open" });
    this.root.append(TEMPLATE.content.cloneNode(true));
    this.$ = (selector) => this.root.querySelector(selector);
    this.wirePanel();
  }

  connectedCallback() {
    if (this.started) return;
    this.started = true;
    if (this.client === null) {
      const pollSeconds = Number.parseFloat(this.getAttribute("poll-interval") ?? "");
      this.client = new HeraldClient({
        token: this.getAttribute("token-url"),
        baseUrl: this.getAttribute("base-url") ?? "",
        ...(pollSeconds > 0 ? { pollInterval: pollSeconds * 1000 } : {}),
      });
      this.ownsClient = true;
    }
    this.wireClient();
    this.start().catch((error) => this.showError(error));
  }

  /** A bell moved elsewhere in the page reconnects with a client of its own, from scratch. */
  disconnectedCallback() {
    this.started = false;
    if (!this.ownsClient) return;
    this.client.close();
    this.client = null;
    this.ownsClient = false;
    this.clear();
  }

  async start() {
    await this.client.start();
    await this.loadPage(null);
  }

  /** The panel's own controls, once: they outlive any client. */
  wirePanel() {
    const bell = this.$(".bell");
    bell.addEventListener("click", () => this.toggle());
    this.$(".read-all").addEventListener("click", () => this.act(() => this.client.markAllRead()));
    this.root.addEventListener("keydown", (event) => this.onKey(event));
    const alerts = this.$(".alerts");
    alerts.hidden = typeof Notification === "undefined" || Notification.permission !== "default";
    alerts.addEventListener("click", async () => {
      await this.client.requestSystemNotifications();
      alerts.hidden = true;
    });
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadMore();
    }, { root: this.$(".panel") });
    this.observer.observe(this.$(".sentinel"));
  }

  wireClient() {
    const client = this.client;
    client.addEventListener("state", (event) => this.showState(event.detail));
    client.addEventListener("notification", (event) => this.onNotification(event.detail));
    client.addEventListener("unread_count", (event) => this.applyCounts(event.detail));
    for (const name of ["read", "unread", "seen"]) {
      client.addEventListener(name, (event) => this.onState(name, event.detail));
    }
    for (const name of ["archived", "deleted"]) {
      client.addEventListener(name, (event) => this.onGone(event.detail));
    }
    client.addEventListener("unarchived", () => this.reload());
    client.addEventListener("reset", () => this.reload());
    this.showState(client);
  }

  // --- data ---------------------------------------------------------------------------

  async loadPage(before) {
    this.loading = true;
    try {
      const page = await this.client.list({ before, limit: this.pageSize });
      for (const item of page.items) this.upsert(item);
      this.nextCursor = page.next_cursor;
      this.applyCounts(page);
      this.$(".error").hidden = true;
    } finally {
      this.loading = false;
      this.$(".empty").hidden = this.items.size > 0;
    }
  }

  get pageSize() {
    const size = Number.parseInt(this.getAttribute("page-size") ?? "20", 10);
    return Number.isFinite(size) && size > 0 && size <= 100 ? size : 20;
  }

  loadMore() {
    if (this.loading || this.nextCursor === null || this.$(".panel").hidden) return;
    this.loadPage(this.nextCursor).catch((error) => this.showError(error));
  }

  clear() {
    for (const { element } of this.items.values()) element.remove();
    this.items.clear();
    this.countsAt = null;
    this.newerUnread.clear();
    this.nextCursor = null;
  }

  async reload() {
    this.clear();
    await this.loadPage(null).catch((error) => this.showError(error));
  }

  onNotification(item) {
    if (item.archived_at || this.items.has(item.id)) return;
    this.upsert(item);
    if (!item.read_at && (this.countsAt === null || isNewer(item.cursor, this.countsAt))) {
      this.newerUnread.add(item.cursor);
      this.showUnread();
    }
  }

  onState(name, detail) {
    const changed = (entry) => {
      const { item } = entry;
      if (name === "read") item.read_at ??= detail.at;
      if (name === "unread") item.read_at = null;
      if (name === "seen") item.seen_at ??= detail.at;
      this.render(entry);
    };
    if (detail.id !== null) {
      const entry = this.items.get(detail.id);
      if (entry) changed(entry);
    } else {
      // A bulk change covers every item up to its cursor.
      for (const entry of this.items.values()) {
        if (detail.up_to === undefined || !isNewer(entry.item.cursor, detail.up_to)) changed(entry);
      }
    }
    this.applyCounts(detail);
  }

  onGone(detail) {
    if (detail.id === null) {
      this.reload();
    } else {
      this.items.get(detail.id)?.element.remove();
      this.items.delete(detail.id);
      this.$(".empty").hidden = this.items.size > 0;
    }
    this.applyCounts(detail);
  }

  async act(call) {
    try {
      await call();
    } catch (error) {
      this.showError(error);
    }
  }

  // --- rendering ----------------------------------------------------------------------

  /** Newest first by cursor, whichever arrives first: the list page or the stream. */
  upsert(item) {
    let entry = this.items.get(item.id);
    if (entry === undefined) {
      entry = { item, element: this.createItem(item.id) };
      this.items.set(item.id, entry);
      const list = this.$(".list");
      const older = [...list.children].find((element) =>
        isNewer(item.cursor, this.items.get(element.dataset.id).item.cursor),
      );
      list.insertBefore(entry.element, older ?? null);
      this.$(".empty").hidden = true;
    } else {
      entry.item = item;
    }
    this.render(entry);
  }

  createItem(id) {
    const element = document.createElement("li");
    element.className = "item";
    element.dataset.id = id;
    element.innerHTML = `
      <button class="open" type="button" part="item">
        <span class="title"></span><span class="body"></span><time></time>
      </button>
      <div class="actions">
        <button class="toggle" type="button"></button>
        <button class="delete" type="button" aria-label="Delete">✕</button>
      </div>`;
    element.querySelector(".open").addEventListener("click", () => {
      const { item } = this.items.get(id);
      if (!item.read_at) this.act(() => this.client.markRead(id));
    });
    element.querySelector(".toggle").addEventListener("click", () => {
      const { item } = this.items.get(id);
      this.act(() => (item.read_at ? this.client.markUnread(id) : this.client.markRead(id)));
    });
    element.querySelector(".delete").addEventListener("click", () => {
      this.act(() => this.client.remove(id));
    });
    return element;
  }

  render({ item, element }) {
    const unread = !item.read_at;
    element.classList.toggle("unread", unread);
    element.dataset.priority = item.priority;
    element.querySelector(".title").textContent = item.title;
    element.querySelector(".body").textContent = item.body;
    const time = element.querySelector("time");
    time.dateTime = item.created_at;
    time.textContent = formatTime(item.created_at);
    const toggle = element.querySelector(".toggle");
    toggle.textContent = unread ? "✓" : "↺";
    toggle.setAttribute("aria-label", unread ? "Mark read" : "Mark unread");
    element.querySelector(".open").setAttribute(
      "aria-label", `${unread ? "Unread: " : ""}${item.title}`,
    );
  }

  /** Counts from Herald (a list page, a stream's `unread_count`, a state event), exact as of
   * `counts_at`; older than what the bell already has, they are stale and ignored. */
  applyCounts({ unread_count: count, counts_at: at }) {
    if (typeof count !== "number" || typeof at !== "string") return;
    if (this.countsAt !== null && isNewer(this.countsAt, at)) return;
    this.countsAt = at;
    this.baseUnread = count;
    for (const cursor of this.newerUnread) {
      if (!isNewer(cursor, at)) this.newerUnread.delete(cursor);
    }
    this.showUnread();
  }

  get unread() {
    return Math.max(0, this.baseUnread + this.newerUnread.size);
  }

  showUnread() {
    const badge = this.$(".badge");
    badge.hidden = this.unread === 0;
    badge.textContent = this.unread > 99 ? "99+" : String(this.unread);
    this.$(".bell").setAttribute(
      "aria-label", this.unread ? `Notifications, ${this.unread} unread` : "Notifications",
    );
    this.dispatchEvent(new CustomEvent("herald-unread", { detail: { count: this.unread } }));
  }

  showState({ state, transport }) {
    this.setAttribute("state", state);
    this.setAttribute("transport", transport ?? "");
    this.$(".state").textContent = STATE_LABELS[state] ?? state;
    this.$(".dot").dataset.state = state;
  }

  showError(error) {
    const element = this.$(".error");
    element.textContent = `Could not reach notifications: ${error.message}`;
    element.hidden = false;
  }

  // --- keyboard -----------------------------------------------------------------------

  toggle(open = this.$(".panel").hidden) {
    const panel = this.$(".panel");
    panel.hidden = !open;
    this.$(".bell").setAttribute("aria-expanded", String(open));
    if (open) {
      this.$("h2").focus();
      this.loadMore();
    }
  }

  onKey(event) {
    if (event.key === "Escape" && !this.$(".panel").hidden) {
      this.toggle(false);
      this.$(".bell").focus();
      return;
    }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const targets = [...this.root.querySelectorAll(".item .open")];
    if (targets.length === 0) return;
    const at = targets.indexOf(this.root.activeElement);
    const step = event.key === "ArrowDown" ? 1 : -1;
    const next = at === -1 ? 0 : Math.min(targets.length - 1, Math.max(0, at + step));
    targets[next].focus();
    event.preventDefault();
  }
}
