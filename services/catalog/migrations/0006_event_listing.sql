-- The listing's precomputed row: one per listed performance (not a draft, of an event that is not
-- a draft) with what the listing filters and sorts on, so that an uncached listing is one scan of
-- this table instead of a DISTINCT ON over performances with an EXISTS per sale window. Written
-- in the transactions that change what it is made of (store/listing.rs, `refresh_*`); what it
-- only shows (title, venue names, prices) is read for the page's rows when the listing answers.
CREATE TABLE event_listing (
    -- No foreign keys: checking one would take a key-share lock on the event from a writer
    -- that holds only a performance's lock (the availability consumer), against the lock order.
    -- Performances and events are never deleted; a refresh deletes the row of one that is gone.
    performance_id uuid PRIMARY KEY,
    event_id       uuid NOT NULL,
    starts_at      timestamptz NOT NULL,
    status         text NOT NULL,            -- the performance's stored state
    sale_opens_at  timestamptz NOT NULL,
    sale_closes_at timestamptz NOT NULL,
    -- The union of its sale windows [opens_at, closes_at): on sale at t is `sale_windows @> t`.
    sale_windows   tstzmultirange NOT NULL,
    -- Each window's opening as a point [opens_at, opens_at]: a window opens in (t, t + 24 h] is
    -- `sale_openings && tstzrange(t, t + 24 h, '(]')`.
    sale_openings  tstzmultirange NOT NULL,
    kind           text NOT NULL,
    venue_id       uuid NOT NULL,
    home_team      text,
    away_team      text,
    search_doc     text NOT NULL
);
CREATE INDEX event_listing_starts ON event_listing (starts_at, event_id);
CREATE INDEX event_listing_event ON event_listing (event_id);
CREATE INDEX event_listing_search ON event_listing USING gin (search_doc gin_trgm_ops);

INSERT INTO event_listing
SELECT p.id, p.event_id, p.starts_at, p.status, p.sale_opens_at, p.sale_closes_at,
       COALESCE((SELECT range_agg(tstzrange(w.opens_at, w.closes_at)) FROM sale_windows w
                  WHERE w.performance_id = p.id), '{}'),
       COALESCE((SELECT range_agg(tstzrange(w.opens_at, w.opens_at, '[]')) FROM sale_windows w
                  WHERE w.performance_id = p.id), '{}'),
       e.kind, e.venue_id, e.home_team, e.away_team, e.search_doc
FROM performances p JOIN events e ON e.id = p.event_id
WHERE p.status <> 'draft' AND e.status <> 'draft';

-- Venue detail is cached by (venue, revision): every write of a venue bumps it.
ALTER TABLE venues ADD COLUMN revision bigint NOT NULL DEFAULT 1;
