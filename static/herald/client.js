/**
 * Herald's browser client: the live events of one user, shared by every tab of an origin.
 *
 * One tab leads (it holds a Web Lock) and keeps the only connection: EventSource first, the
 * WebSocket when EventSource keeps failing while the API answers, REST polling when both do.
 * It relays every event to the other tabs over a BroadcastChannel, so ten tabs hold one
 * stream, not ten (browsers allow six per host over HTTP/1.1). When the leader closes, the
 * next tab takes the lock and resumes from the last cursor it saw; the store replays what
 * was missed, and each tab drops what it already had, so nothing is lost and nothing shown
 * twice.
 *
 * Every connection resumes from the client's own cursor with a fresh stream token, rather
 * than letting EventSource reconnect by itself with a token that may have expired.
 */

const TRANSPORTS = ["sse", "ws", "poll"];
// Events that carry a cursor; `unread_count` and `token_expiring` do not.
const CURSOR_EVENTS = new Set([
  "notification", "read", "unread", "seen", "archived", "unarchived", "deleted", "reset",
]);
const STREAM_EVENTS = [...CURSOR_EVENTS, "unread_count", "token_expiring"];
const ALERT_PRIORITIES = new Set(["high", "urgent"]);
// Renew an API token this long before it expires, so no request races its expiry.
const TOKEN_MARGIN_MS = 60_000;
const WS_PING_MS = 25_000;
const WS_TOKEN_EXPIRED = 4001;
const POLL_PAGE = 100;
const MIN_RENEWAL_MS = 1_000;

/** The registration once its service worker is active: subscribing needs one, and
 * `navigator.serviceWorker.ready` never resolves for a page outside the worker's scope. */
export async function activated(registration) {
  const worker = registration.installing || registration.waiting || registration.active;
  if (worker && worker.state !== "activated") {
    await new Promise((resolve, reject) => {
      worker.addEventListener("statechange", () => {
        if (worker.state === "activated") resolve();
        if (worker.state === "redundant") reject(new Error("Herald's service worker failed to start"));
      });
    });
  }
  return registration;
}

/** A problem+json answer from Herald, or a failed request. */
export class HeraldError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  static async from(response) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    return new HeraldError(response.status, problem);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/** Exponential backoff with "equal jitter": never zero, never synchronized across clients. */
function backoff(failures, baseMs, capMs) {
  const ceiling = Math.min(capMs, baseMs * 2 ** failures);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Cursors are decimal strings without leading zeros; compare them without losing digits. */
export function isNewer(cursor, than) {
  if (than === null) return true;
  return cursor.length !== than.length ? cursor.length > than.length : cursor > than;
}

function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

/**
 * The user's API token, from a function the page provides or from a URL of the page's own
 * backend that answers `{"token": "..."}` to a POST carrying the page's cookies.
 */
class Credentials {
  constructor(source) {
    this.source = source;
    this.token = null;
    this.claims = {};
    this.pending = null;
  }

  get sub() {
    return this.claims.sub ?? null;
  }

  get expiresAt() {
    return typeof this.claims.exp === "number" ? this.claims.exp * 1000 : Infinity;
  }

  async get(force = false) {
    if (!force && this.token !== null && Date.now() < this.expiresAt - TOKEN_MARGIN_MS) {
      return this.token;
    }
    this.pending ??= this.fetch().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  async fetch() {
    let answer;
    if (typeof this.source === "function") {
      answer = await this.source();
    } else {
      const response = await fetch(this.source, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw await HeraldError.from(response);
      answer = await response.json();
    }
    const token = typeof answer === "string" ? answer : answer?.token;
    if (typeof token !== "string" || !token) throw new HeraldError(0, { title: "no token given" });
    this.token = token;
    this.claims = claimsOf(token);
    return token;
  }
}

/** Herald's REST API with the user's token; a 401 renews the token once and retries. */
class Api {
  constructor(baseUrl, credentials) {
    this.baseUrl = baseUrl;
    this.credentials = credentials;
  }

  async request(method, path, { body, headers = {}, signal } = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const token = await this.credentials.get(attempt > 0);
      const response = await fetch(this.baseUrl + path, {
        method,
        signal,
        cache: "no-store",
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (response.status !== 401 || attempt > 0) return response;
    }
  }

  async json(method, path, body) {
    const response = await this.request(method, path, { body });
    if (!response.ok) throw await HeraldError.from(response);
    return response.status === 204 ? null : response.json();
  }

  /** Whether Herald answers at all: it tells a blocked stream from a server that is down. */
  async reachable() {
    try {
      await this.request("GET", "/api/notifications/unread-count");
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * Leader election among the tabs of one user: the tab holding the Web Lock leads. Without
 * Web Locks or BroadcastChannel (an insecure origin, an old browser) every tab leads itself.
 */
class TabGroup {
  constructor(name, share) {
    this.name = name;
    this.shared = share && "BroadcastChannel" in globalThis && Boolean(navigator.locks);
    this.channel = this.shared ? new BroadcastChannel(name) : null;
    this.abort = new AbortController();
    this.release = null;
  }

  lead(onLead) {
    if (!this.shared) {
      onLead();
      return;
    }
    navigator.locks
      .request(this.name, { signal: this.abort.signal }, () => {
        if (this.abort.signal.aborted) return undefined;
        onLead();
        return new Promise((resolve) => {
          this.release = resolve;
        });
      })
      .catch(() => {});
  }

  post(message) {
    this.channel?.postMessage(message);
  }

  close() {
    this.abort.abort();
    this.release?.();
    this.channel?.close();
  }
}

/**
 * The connection the leading tab keeps, moving down TRANSPORTS when one keeps failing while
 * the API still answers, and back up after `upgradeAfter` in a fallback.
 */
class Link {
  constructor(client) {
    this.client = client;
    this.options = client.options;
  }

  async run(signal) {
    const transports = this.options.transports;
    let level = 0;
    let failures = 0;
    while (!signal.aborted) {
      const transport = transports[level];
      this.client.setState("connecting", transport);
      const began = Date.now();
      let outcome;
      try {
        outcome = await this[transport](signal, level > 0);
      } catch {
        outcome = { opened: false };
      }
      if (signal.aborted) return;
      // Renew at once, unless the last renewal was just now: a token source handing out
      // tokens that are always about to expire must not turn into a reconnect storm.
      if (outcome.renew && Date.now() - began >= MIN_RENEWAL_MS) continue;
      if (outcome.upgrade) {
        level = 0;
        failures = 0;
        continue;
      }
      if (outcome.opened) {
        failures = 0;
      } else {
        failures += 1;
        if (!(await this.client.api.reachable())) {
          this.client.setState("offline", transport);
        } else if (failures >= this.options.failuresBeforeFallback && level < transports.length - 1) {
          level += 1;
          failures = 0;
          continue;
        }
      }
      await sleep(backoff(failures, this.options.retryBaseMs, this.options.retryCapMs), signal);
    }
  }

  async streamUrl(path, scheme) {
    const { token } = await this.client.api.json("POST", "/api/stream/token");
    const url = new URL(this.client.baseUrl + path, location.href);
    if (scheme) url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", token);
    const cursor = await this.client.startCursor();
    url.searchParams.set("last_event_id", cursor);
    return url;
  }

  /** A stream counts as open at its first event (Herald always starts with `unread_count`),
   * not at its open: a proxy that accepts and then cuts every stream must count as failing. */
  opened(already, transport) {
    if (!already) this.client.setState("live", transport);
  }

  /** One EventSource, until it errs: we resume ourselves, with a fresh token. */
  async sse(signal) {
    const url = await this.streamUrl("/api/stream", false);
    return new Promise((resolve) => {
      const source = new EventSource(url);
      let opened = false;
      const finish = (outcome) => {
        source.close();
        signal.removeEventListener("abort", onAbort);
        resolve(outcome);
      };
      const onAbort = () => finish({ opened });
      signal.addEventListener("abort", onAbort);
      source.onerror = () => finish({ opened });
      for (const name of STREAM_EVENTS) {
        source.addEventListener(name, (message) => {
          this.opened(opened, "sse");
          opened = true;
          if (name === "token_expiring") {
            finish({ opened: true, renew: true });
            return;
          }
          const id = CURSOR_EVENTS.has(name) ? message.lastEventId : null;
          this.client.receive({ event: name, id, data: JSON.parse(message.data) });
        });
      }
    });
  }

  /** One WebSocket, until it closes; 4001 means the token expired, so renew at once. */
  async ws(signal, fallback) {
    const url = await this.streamUrl("/api/ws", true);
    return new Promise((resolve) => {
      const socket = new WebSocket(url);
      let opened = false;
      let pinger = null;
      let upgrader = null;
      const finish = (outcome) => {
        clearInterval(pinger);
        clearTimeout(upgrader);
        signal.removeEventListener("abort", onAbort);
        socket.onclose = null;
        socket.close();
        resolve(outcome);
      };
      const onAbort = () => finish({ opened });
      signal.addEventListener("abort", onAbort);
      socket.onopen = () => {
        pinger = setInterval(() => socket.send('{"type":"ping"}'), WS_PING_MS);
        if (fallback) {
          upgrader = setTimeout(() => finish({ opened, upgrade: true }), this.options.upgradeAfter);
        }
      };
      socket.onmessage = (message) => {
        this.opened(opened, "ws");
        opened = true;
        const frame = JSON.parse(message.data);
        if (frame.event === "token_expiring") {
          finish({ opened: true, renew: true });
        } else if (STREAM_EVENTS.includes(frame.event)) {
          this.client.receive({ event: frame.event, id: frame.id, data: frame.data });
        }
      };
      socket.onclose = (event) => finish({ opened, renew: event.code === WS_TOKEN_EXPIRED });
    });
  }

  /** REST polling with `after=` and ETag, for as long as it answers. */
  async poll(signal, fallback) {
    const started = Date.now();
    let opened = false;
    let etag = null;
    try {
      while (!signal.aborted) {
        const cursor = await this.client.startCursor();
        const response = await this.client.api.request(
          "GET",
          `/api/notifications?after=${cursor}&limit=${POLL_PAGE}`,
          { headers: etag ? { "If-None-Match": etag } : {}, signal },
        );
        let more = false;
        if (response.ok) {
          etag = response.headers.get("ETag");
          const page = await response.json();
          for (const item of page.items) {
            this.client.receive({ event: "notification", id: item.cursor, data: item });
          }
          const { unread_count, unseen_count, counts_at } = page;
          this.client.receive({
            event: "unread_count", id: null, data: { unread_count, unseen_count, counts_at },
          });
          more = page.items.length === POLL_PAGE;
        } else if (response.status === 400) {
          // The cursor is ahead of the store (it was reset): start over from its head.
          this.client.receive({ event: "reset", id: await this.client.headCursor(), data: {} });
          etag = null;
        } else if (response.status !== 304) {
          return { opened };
        }
        if (!opened) {
          opened = true;
          this.client.setState("polling", "poll");
        }
        if (fallback && Date.now() - started > this.options.upgradeAfter) {
          return { opened, upgrade: true };
        }
        if (!more) await sleep(this.options.pollInterval, signal);
      }
    } catch {
      return { opened };
    }
    return { opened };
  }
}

/**
 * Events, each a CustomEvent whose `detail` is the event's data as Herald sent it:
 * `notification`, `read`, `unread`, `seen`, `archived`, `unarchived`, `deleted`,
 * `unread_count`, `reset` (refetch the list) and `state` (`{state, transport}`, state being
 * `connecting`, `live`, `polling` or `offline`).
 */
export class HeraldClient extends EventTarget {
  constructor({
    token,
    baseUrl = "",
    transports = TRANSPORTS,
    share = true,
    pollInterval = 15_000,
    retryBaseMs = 1_000,
    retryCapMs = 30_000,
    failuresBeforeFallback = 2,
    upgradeAfter = 300_000,
    systemNotifications = true,
  } = {}) {
    super();
    if (!token) throw new TypeError("HeraldClient needs `token`: a URL or an async function");
    for (const transport of transports) {
      if (!TRANSPORTS.includes(transport)) throw new TypeError(`unknown transport ${transport}`);
    }
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.options = {
      transports, share, pollInterval, retryBaseMs, retryCapMs, failuresBeforeFallback,
      upgradeAfter, systemNotifications,
    };
    this.credentials = new Credentials(token);
    this.api = new Api(this.baseUrl, this.credentials);
    this.state = "connecting";
    this.transport = null;
    this.cursor = null;
    this.leading = false;
    this.group = null;
    this.stopper = new AbortController();
    let ready;
    /** Resolves once the client has a cursor: fetch lists after it, and nothing falls between. */
    this.ready = new Promise((resolve) => {
      ready = resolve;
    });
    this.markReady = ready;
  }

  get user() {
    return this.credentials.sub;
  }

  async start() {
    await this.credentials.get();
    const origin = new URL(this.baseUrl || "/", location.href).origin;
    this.group = new TabGroup(`herald:${origin}:${this.user}`, this.options.share);
    if (this.group.channel) {
      this.group.channel.onmessage = (message) => this.onTabMessage(message.data);
      this.group.post({ kind: "hello" });
    }
    this.group.lead(() => this.lead());
    return this.ready;
  }

  close() {
    this.stopper.abort();
    this.group?.close();
    this.leading = false;
  }

  lead() {
    this.leading = true;
    new Link(this).run(this.stopper.signal);
  }

  onTabMessage(message) {
    if (message.kind === "hello" && this.leading && this.cursor !== null) {
      this.group.post({ kind: "sync", cursor: this.cursor, state: this.state, transport: this.transport });
    } else if (message.kind === "sync" || message.kind === "state") {
      if (message.cursor && this.cursor === null) this.adopt(message.cursor);
      if (!this.leading) this.setState(message.state, message.transport);
    } else if (message.kind === "frame" && !this.leading) {
      this.receive(message.frame);
    }
  }

  adopt(cursor) {
    this.cursor = cursor;
    this.markReady(cursor);
  }

  /** Where the first connection starts: the newest item, so a list fetched after `ready`
   * and the stream overlap rather than leave a gap. */
  async startCursor() {
    if (this.cursor === null) this.adopt(await this.headCursor());
    return this.cursor;
  }

  async headCursor() {
    const page = await this.api.json("GET", "/api/notifications?limit=1&archived=false");
    return page.items[0]?.cursor ?? "0";
  }

  /** One event from this tab's connection or from the leader's; each is applied once. */
  receive(frame) {
    if (frame.id !== null) {
      // A reset may move the cursor back (the store was rebuilt); anything else only forward.
      if (frame.event !== "reset" && !isNewer(frame.id, this.cursor)) return;
      this.adopt(frame.id);
    }
    if (this.leading) this.group.post({ kind: "frame", frame });
    // An event's cursor is its id; the detail carries it, as REST items do.
    const detail = frame.id === null ? frame.data : { ...frame.data, cursor: frame.id };
    this.dispatchEvent(new CustomEvent(frame.event, { detail }));
    if (frame.event === "notification") this.alert(detail);
  }

  setState(state, transport) {
    if (state === this.state && transport === this.transport) return;
    this.state = state;
    this.transport = transport;
    if (this.leading) {
      this.group.post({ kind: "state", state, transport, cursor: this.cursor });
    }
    this.dispatchEvent(new CustomEvent("state", { detail: { state, transport } }));
  }

  /** A system notification for an urgent item while the page is hidden, if allowed. Every
   * hidden tab may try; the shared tag makes the browser show it once. */
  alert(item) {
    if (!this.options.systemNotifications || !ALERT_PRIORITIES.has(item.priority)) return;
    if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
    if (document.visibilityState !== "hidden") return;
    new Notification(item.title, { body: item.body, tag: `herald-${item.id}` });
  }

  async requestSystemNotifications() {
    if (typeof Notification === "undefined") return "denied";
    return Notification.requestPermission();
  }

  /** Web Push, for when no tab is open: asks permission, registers Herald's service worker,
   * subscribes with this Herald's key and stores the subscription. Resolves to the
   * PushSubscription; rejects with a reason a page can show. */
  async enablePush({ serviceWorker = `${this.baseUrl}/static/herald-sw.js` } = {}) {
    if (!("serviceWorker" in navigator) || typeof PushManager === "undefined") {
      throw new Error("this browser has no Web Push");
    }
    const { push_public_key: key } = await this.api.json("GET", "/api/channels");
    if (!key) throw new Error("Web Push is not configured on this Herald");
    if ((await this.requestSystemNotifications()) !== "granted") {
      throw new Error("notifications are not allowed for this site");
    }
    const registration = await activated(await navigator.serviceWorker.register(serviceWorker));
    const subscribe = () =>
      registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    let subscription = (await registration.pushManager.getSubscription()) ?? (await subscribe());
    try {
      await this.api.json("POST", "/api/push-subscriptions", subscription.toJSON());
    } catch (error) {
      // Another user signed in on this browser holds its endpoint: a fresh one is ours.
      if (!(error instanceof HeraldError && error.problem?.type?.endsWith("/push-endpoint-taken"))) {
        throw error;
      }
      await subscription.unsubscribe();
      subscription = await subscribe();
      await this.api.json("POST", "/api/push-subscriptions", subscription.toJSON());
    }
    return subscription;
  }

  /** Stop Web Push in this browser, here and at Herald. */
  async disablePush({ serviceWorker = `${this.baseUrl}/static/herald-sw.js` } = {}) {
    const registration = await navigator.serviceWorker?.getRegistration(serviceWorker);
    const subscription = await registration?.pushManager.getSubscription();
    if (!subscription) return;
    try {
      await this.api.json("DELETE", "/api/push-subscriptions", { endpoint: subscription.endpoint });
    } catch (error) {
      if (!(error instanceof HeraldError && error.status === 404)) throw error;
    }
    await subscription.unsubscribe();
  }

  // --- the inbox over REST --------------------------------------------------------------

  list({ before = null, limit = 20, unread = null } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before !== null) query.set("before", before);
    if (unread !== null) query.set("unread", String(unread));
    return this.api.json("GET", `/api/notifications?${query}`);
  }

  markRead(id) {
    return this.api.json("POST", `/api/notifications/${encodeURIComponent(id)}/read`);
  }

  markUnread(id) {
    return this.api.json("POST", `/api/notifications/${encodeURIComponent(id)}/unread`);
  }

  markAllRead() {
    return this.api.json("POST", "/api/notifications/read-all");
  }

  remove(id) {
    return this.api.json("DELETE", `/api/notifications/${encodeURIComponent(id)}`);
  }

  /** Any other Herald call with this user's token, e.g. `request("POST", "/api/notifications", {...})`. */
  request(method, path, body) {
    return this.api.json(method, path, body);
  }
}
