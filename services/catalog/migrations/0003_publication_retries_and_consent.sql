-- Autopublish retries: a performance whose publication failed is tried again after a backoff,
-- recorded here so that it survives restarts and every replica sees it (see src/autopublish.rs).
ALTER TABLE performances
    ADD COLUMN publish_attempts        integer NOT NULL DEFAULT 0,   -- failed automatic attempts
    ADD COLUMN publish_next_attempt_at timestamptz,                  -- NULL: due at once
    ADD COLUMN publish_last_error      text;
CREATE INDEX performances_announced ON performances (sale_opens_at) WHERE status = 'announced';

-- Consent to use a venue (see docs/services/catalog.md, Permissions): an event may use a venue
-- whose owner is its organizer, a `shared` venue, or one whose owner or an admin granted the
-- organizer. Seeded venues have no owner: only admins share them or grant them.
ALTER TABLE venues ADD COLUMN shared boolean NOT NULL DEFAULT false;
CREATE TABLE venue_organizers (
    venue_id     uuid NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    organizer_id uuid NOT NULL,
    granted_by   uuid NOT NULL,
    granted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue_id, organizer_id)
);

-- The organizer accounts of the KBO clubs (admin-managed): only they and admins put a team code
-- on an event.
CREATE TABLE team_organizers (
    team         text NOT NULL,                -- a code of domain/teams.rs
    organizer_id uuid NOT NULL,
    granted_by   uuid NOT NULL,
    granted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team, organizer_id)
);
CREATE INDEX team_organizers_by_organizer ON team_organizers (organizer_id);

-- A price of 0 only for an event marked free. Events that already had one keep it, marked free.
ALTER TABLE events ADD COLUMN free boolean NOT NULL DEFAULT false;
UPDATE events SET free = true
 WHERE id IN (SELECT event_id FROM price_tiers WHERE price_krw = 0);

-- Changes of price, ticket limit and start time made after a sale opened (admins only): who,
-- when, what, old → new. Appended, never updated.
CREATE TABLE catalog_audit (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    actor_id       uuid NOT NULL,
    event_id       uuid NOT NULL,
    performance_id uuid,
    field          text NOT NULL CHECK (field IN ('price_tiers', 'ticket_limit', 'starts_at')),
    old_value      jsonb NOT NULL,
    new_value      jsonb NOT NULL
);
CREATE INDEX catalog_audit_event ON catalog_audit (event_id, id);
