/**
 * Herald's service worker: shows Web Push notifications when no Herald tab is open, and
 * brings the app forward when one is clicked. Register it with `HeraldClient.enablePush()`.
 *
 * The push payload is what Herald's push channel sends: {title, body, data: {id, type, url?}}.
 * Its tag is the notification's, the same an open tab uses for its own system notification,
 * so the browser shows one, never two.
 */

self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch {
    message = { title: event.data ? event.data.text() : "" };
  }
  const data = message.data || {};
  event.waitUntil(
    self.registration.showNotification(message.title || "New notification", {
      body: message.body || "",
      tag: data.id ? `herald-${data.id}` : undefined,
      data,
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL(event.notification.data?.url || "/", self.location.origin);
  event.waitUntil(
    (async () => {
      const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const same = open.find((client) => new URL(client.url).origin === target.origin);
      if (same) {
        await same.focus();
        if (target.origin === self.location.origin && same.url !== target.href) {
          await same.navigate?.(target.href);
        }
        return;
      }
      await self.clients.openWindow(target.href);
    })(),
  );
});
