-- What every sale looks up, without reading more than it needs.
-- A sale checks that its hold was not sold under another order: by hold, not a scan of every
-- seat sold so far (a sold-out stadium has 24,000 rows).
CREATE INDEX IF NOT EXISTS sold_seats_by_hold ON sold_seats (hold_id);
CREATE INDEX IF NOT EXISTS sold_areas_by_hold ON sold_areas (hold_id);
-- The per-buyer limit every sale enforces, kept beside the publication instead of read out of it
-- (a stadium's `spec` is 2.5 MB of JSON, detoasted whole to read one field).
ALTER TABLE performances ADD COLUMN IF NOT EXISTS ticket_limit BIGINT
    GENERATED ALWAYS AS (COALESCE((spec->>'ticket_limit')::bigint, 0)) STORED;
