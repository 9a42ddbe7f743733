-- Last guards for general admission and per-buyer limits, as `sold_seats_once` is for seats:
-- whatever the hold store did, SeatDB never sells an area past its capacity, and the service
-- checks every sale against the buyer's sold tickets under the buyer's row lock.

-- Places sold per general-admission area.
CREATE TABLE area_sales (
    performance_id UUID NOT NULL,
    area_id        TEXT NOT NULL,
    capacity       INT NOT NULL CHECK (capacity >= 0),
    sold           INT NOT NULL DEFAULT 0 CHECK (sold >= 0),
    PRIMARY KEY (performance_id, area_id),
    CONSTRAINT area_sales_within_capacity CHECK (sold <= capacity)
);

-- Tickets (seats + places) sold per buyer and performance.
CREATE TABLE buyer_sales (
    performance_id UUID NOT NULL,
    buyer_id       UUID NOT NULL,
    tickets        INT NOT NULL CHECK (tickets >= 0),
    PRIMARY KEY (performance_id, buyer_id)
);

-- Orders whose sale was refused (`sale.rejected` went out): a later delivery of the same
-- confirmation must not sell what the order side is refunding.
CREATE TABLE rejected_sales (
    order_id       UUID PRIMARY KEY,
    performance_id UUID NOT NULL,
    hold_id        UUID NOT NULL,
    reason         TEXT NOT NULL,
    rejected_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Backfill from what was sold before these tables existed. An area already sold past its
-- capacity keeps its count, with the capacity raised to fit it (the CHECK holds from here on).
INSERT INTO area_sales (performance_id, area_id, capacity, sold)
SELECT p.performance_id, a.area_id, GREATEST(a.capacity, COALESCE(s.sold, 0)), COALESCE(s.sold, 0)
FROM performances p
CROSS JOIN LATERAL (
    SELECT e->>'area_id' AS area_id, GREATEST((e->>'capacity')::int, 0) AS capacity
    FROM jsonb_array_elements(p.spec->'areas') e
) a
LEFT JOIN (
    SELECT performance_id, area_id, sum(quantity)::int AS sold
    FROM sold_areas GROUP BY performance_id, area_id
) s ON s.performance_id = p.performance_id AND s.area_id = a.area_id
ON CONFLICT DO NOTHING;

INSERT INTO buyer_sales (performance_id, buyer_id, tickets)
SELECT performance_id, buyer_id, sum(n)::int
FROM (
    SELECT performance_id, buyer_id, count(*) AS n FROM sold_seats GROUP BY 1, 2
    UNION ALL
    SELECT performance_id, buyer_id, sum(quantity) FROM sold_areas GROUP BY 1, 2
) t
GROUP BY performance_id, buyer_id;
