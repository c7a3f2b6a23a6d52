-- A private topic is joined only through the backend (PUT /api/topics/{name}/subscribers/{user})
-- or by a user whose token names it; `granted` marks such a subscription, and only granted
-- subscribers of a private topic receive it.
ALTER TABLE topics ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
ALTER TABLE topic_subscriptions ADD COLUMN granted INTEGER NOT NULL DEFAULT 0;

-- A topic row now stands for a topic published to or configured; a subscription no longer
-- makes one (the list shows subscribed topics from the subscriptions themselves), so rows
-- that subscribes alone left behind go.
DELETE FROM topics WHERE name NOT IN (SELECT topic FROM notifications WHERE topic IS NOT NULL);
