-- The deliveries each user has queued or being sent: the dispatcher counts them on every pass
-- to keep each user within HERALD_MAX_DELIVERIES_IN_FLIGHT_PER_USER, and this index lets that
-- count read only the rows in flight, never the pending backlog.
CREATE INDEX deliveries_in_flight ON deliveries (user_id) WHERE queued_at IS NOT NULL;
