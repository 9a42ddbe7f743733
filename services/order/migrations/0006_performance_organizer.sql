-- The organizer account that owns the performance's event, as the catalog last published it
-- (NULL: administrators only, e.g. the seeded games). Gate staff of other organizers may not
-- read the performance's gate key nor check tickets in at its gates.
ALTER TABLE performances ADD COLUMN organizer_id uuid;
