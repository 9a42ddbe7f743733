-- Seats held back per performance (season tickets, club, media, obstructed view): withheld from
-- sale without editing the venue, and released later. The hold store is the write authority (a
-- withheld seat is marked there, in the same atomic step that checks it is free); these rows are
-- the record it is rebuilt from after a loss, written in the same transaction path as sales.
CREATE TABLE withheld_seats (
    performance_id UUID NOT NULL,
    seat_id        TEXT NOT NULL,
    reason         TEXT NOT NULL
        CHECK (reason IN ('season_ticket', 'club', 'media', 'obstructed', 'other')),
    withheld_by    UUID NOT NULL,
    withheld_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (performance_id, seat_id)
);

-- The organizer account that owns the performance's event, from the `performance.published`
-- header (absent: administrators only). Kept with the revision it came with.
ALTER TABLE performances ADD COLUMN IF NOT EXISTS organizer_id UUID;
