-- The admin's recent-notifications view counts recipients and reads per notification, and
-- deleting a notification cascades to its inbox rows: both look inbox rows up by notification.
CREATE INDEX inbox_notification ON inbox (notification_id);
