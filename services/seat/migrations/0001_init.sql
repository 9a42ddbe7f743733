-- SeatDB: published inventory and sold seats. Holds live in the hold store (Redis or memory).

-- The last published revision of each performance (the `performance.published` payload).
CREATE TABLE performances (
    performance_id UUID PRIMARY KEY,
    revision       BIGINT NOT NULL,
    spec           JSONB NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A seat sold by a confirmed order. The unique constraint is the last guard against selling a
-- seat twice, whatever the hold store did.
CREATE TABLE sold_seats (
    performance_id UUID NOT NULL,
    seat_id        TEXT NOT NULL,
    order_id       UUID NOT NULL,
    hold_id        UUID NOT NULL,
    buyer_id       UUID NOT NULL,
    sold_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT sold_seats_once UNIQUE (performance_id, seat_id)
);
CREATE INDEX sold_seats_by_order ON sold_seats (order_id);

-- General-admission places sold by a confirmed order.
CREATE TABLE sold_areas (
    order_id       UUID NOT NULL,
    area_id        TEXT NOT NULL,
    performance_id UUID NOT NULL,
    hold_id        UUID NOT NULL,
    buyer_id       UUID NOT NULL,
    quantity       INT NOT NULL CHECK (quantity > 0),
    sold_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, area_id)
);
