-- Every admin action that changed something: who, what, on what, when, and the request's id
-- (which ties the row to the node's log lines). Rows are only ever added.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    request_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, id);

-- Stream tokens issued at or before this instant are refused, and the user's open streams
-- were closed when it was set (sign-out everywhere, a stolen device).
ALTER TABLE users ADD COLUMN streams_revoked_at INTEGER;
