-- The organizer account that owns the performance's event, as the catalog last published it
-- (NULL: administrators only, e.g. the seeded games). Operators other than this organizer and
-- administrators may not read or change the room.
ALTER TABLE rooms ADD COLUMN organizer_id uuid;

-- Automatic admission rate: the admitter leading the room moves `rate_per_sec` after the seat
-- service's measured latency and errors (admission.auto_* settings) instead of keeping the
-- number an operator set.
ALTER TABLE rooms ADD COLUMN auto_rate boolean NOT NULL DEFAULT false;
