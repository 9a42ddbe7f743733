-- An event's own cancellation schedule (contracts::policy::CancellationPolicy as JSON, complete:
-- presets and partial objects are resolved before it is stored), published with each of its
-- performances; NULL: the order service's platform default (`order.cancellation`).
ALTER TABLE events ADD COLUMN cancellation_policy jsonb;
