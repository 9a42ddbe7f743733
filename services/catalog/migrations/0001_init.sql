-- The catalog's database (ProductDB): venues with their seat maps, events, performances, price
-- tiers and sale windows. Ids of seeded rows are stable hashes of natural keys (see src/ids.rs).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- A place where performances happen: a stadium, a hall, a theatre, a museum.
CREATE TABLE venues (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    name_en      text NOT NULL DEFAULT '',
    kind         text NOT NULL,              -- stadium, arena, concert_hall, theatre, museum, other
    city         text NOT NULL DEFAULT '',
    address      text NOT NULL DEFAULT '',
    capacity     integer NOT NULL DEFAULT 0, -- seats + general-admission places
    plan         jsonb NOT NULL DEFAULT '{}', -- drawing frame: {"width","height","shape","field"}
    organizer_id uuid,                       -- creator; NULL for seeded venues (admins only)
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Seat grades (zones) of a venue: what a price tier is attached to.
CREATE TABLE venue_grades (
    venue_id uuid NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    code     text NOT NULL,
    name     text NOT NULL,
    name_en  text NOT NULL DEFAULT '',
    color    text NOT NULL DEFAULT '#888888',
    rank     integer NOT NULL DEFAULT 0,      -- lower is closer to the field or stage
    PRIMARY KEY (venue_id, code)
);

-- Areas (sections) with a geometry the UI draws; seated areas have seats, standing ones a capacity.
CREATE TABLE venue_areas (
    venue_id uuid NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    code     text NOT NULL,
    name     text NOT NULL,
    grade    text NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('seated', 'standing')),
    capacity integer NOT NULL,
    geometry jsonb NOT NULL,                  -- {"polygon": [[x,y],...]} in plan coordinates
    position integer NOT NULL DEFAULT 0,
    PRIMARY KEY (venue_id, code),
    FOREIGN KEY (venue_id, grade) REFERENCES venue_grades (venue_id, code)
);

-- Reserved seats, stored once per venue (not per performance).
CREATE TABLE venue_seats (
    venue_id   uuid NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    seat_id    text NOT NULL,                 -- stable within the venue, e.g. `207-12-15`
    area       text NOT NULL,
    row_label  text NOT NULL,
    number     integer NOT NULL,
    x          real NOT NULL,
    y          real NOT NULL,
    rank       integer NOT NULL DEFAULT 0,
    wheelchair boolean NOT NULL DEFAULT false,
    PRIMARY KEY (venue_id, seat_id),
    FOREIGN KEY (venue_id, area) REFERENCES venue_areas (venue_id, code) ON DELETE CASCADE
);

-- What is sold: a game, a concert, a musical run, an exhibition.
CREATE TABLE events (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL,
    title        text NOT NULL,
    description  text NOT NULL DEFAULT '',
    venue_id     uuid NOT NULL REFERENCES venues (id),
    home_team    text,                        -- team codes (see domain/teams.rs) for games
    away_team    text,
    ticket_limit integer NOT NULL DEFAULT 4,
    waiting_room boolean NOT NULL DEFAULT false,
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'cancelled')),
    organizer_id uuid,
    search_doc   text NOT NULL DEFAULT '',    -- normalized text (see src/search.rs)
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_venue ON events (venue_id);
CREATE INDEX events_teams ON events (home_team, away_team);
CREATE INDEX events_search ON events USING gin (search_doc gin_trgm_ops);

-- Price of each grade for an event, integer KRW.
CREATE TABLE price_tiers (
    event_id  uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    grade     text NOT NULL,
    name      text NOT NULL,
    price_krw bigint NOT NULL CHECK (price_krw >= 0),
    PRIMARY KEY (event_id, grade)
);

-- One date and time of an event.
CREATE TABLE performances (
    id            uuid PRIMARY KEY,
    event_id      uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    starts_at     timestamptz NOT NULL,
    -- draft: hidden; announced: listed, inventory not yet sent to the seat service;
    -- published: inventory sent (revision counts the sends); sold_out; cancelled.
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'announced', 'published', 'sold_out', 'cancelled')),
    sale_opens_at  timestamptz NOT NULL,       -- earliest window opening (denormalized)
    sale_closes_at timestamptz NOT NULL,       -- latest window closing (denormalized)
    revision      bigint NOT NULL DEFAULT 0,  -- bumped on every publication
    cancel_reason text,
    published_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX performances_starts ON performances (starts_at, event_id);
CREATE INDEX performances_event ON performances (event_id, starts_at);

-- When a performance can be bought: a presale, the general opening, ...
CREATE TABLE sale_windows (
    performance_id uuid NOT NULL REFERENCES performances (id) ON DELETE CASCADE,
    position       integer NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('presale', 'general')),
    name           text NOT NULL,
    opens_at       timestamptz NOT NULL,
    closes_at      timestamptz NOT NULL,
    CHECK (opens_at < closes_at),
    PRIMARY KEY (performance_id, position)
);
