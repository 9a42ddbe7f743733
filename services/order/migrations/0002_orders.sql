-- OrderDB: orders (their current status), the append-only record of every status change, the
-- legal status changes (the database refuses any other), tickets, the performances orders are
-- priced and cancelled against, and the buyers' Idempotency-Keys on order creation.

-- Performances as the catalog publishes them: when they start (the cancellation schedule counts
-- from it) and whether the organizer cancelled them.
CREATE TABLE performances (
    performance_id uuid PRIMARY KEY,
    starts_at      timestamptz NOT NULL,
    revision       bigint NOT NULL DEFAULT 0,
    cancelled_at   timestamptz,
    cancel_reason  text
);

-- The status changes src/domain/status.rs allows, and nothing else. Creation is the change from
-- NULL to pending_payment.
CREATE TABLE legal_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO legal_transitions (from_status, to_status) VALUES
    ('pending_payment', 'paid'),
    ('pending_payment', 'expired'),
    ('pending_payment', 'cancelled'),
    ('paid', 'confirmed'),
    ('paid', 'refunding'),
    ('confirmed', 'refunding'),
    ('confirmed', 'cancelled'),
    ('expired', 'refunding'),
    ('cancelled', 'refunding'),
    ('refunding', 'refunded');

CREATE TABLE orders (
    order_id        uuid PRIMARY KEY,
    buyer_id        uuid NOT NULL,
    -- One order per hold: the hold's goods are sold once.
    hold_id         uuid NOT NULL UNIQUE,
    performance_id  uuid NOT NULL,
    -- Exactly the hold's goods: seat ids, and [area id, quantity] pairs.
    seat_ids        jsonb NOT NULL,
    areas           jsonb NOT NULL,
    ticket_count    integer NOT NULL CHECK (ticket_count > 0),
    tickets_krw     bigint NOT NULL CHECK (tickets_krw >= 0),
    booking_fee_krw bigint NOT NULL CHECK (booking_fee_krw >= 0),
    amount_krw      bigint NOT NULL CHECK (amount_krw > 0 AND amount_krw = tickets_krw + booking_fee_krw),
    status          text NOT NULL CHECK (status IN
                    ('pending_payment', 'paid', 'confirmed', 'expired', 'cancelled', 'refunding', 'refunded')),
    -- The cancellation policy that applied when the order was made (frozen), and the start it
    -- counts from.
    policy          jsonb NOT NULL,
    starts_at       timestamptz NOT NULL,
    -- The payment window's end, and the seat service's checkout deadline (later).
    expires_at      timestamptz NOT NULL,
    hold_expires_at timestamptz NOT NULL,
    payment_key     text,
    paid_krw        bigint,
    paid_at         timestamptz,
    last_payment_error text,
    -- The one refund of the order: its id (the payment service refunds an id once), amount
    -- (NULL: whatever is left) and reason.
    refund_id       uuid,
    refund_krw      bigint,
    refund_reason   text,
    refunded_krw    bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_buyer ON orders (buyer_id, created_at DESC);
CREATE INDEX orders_by_performance ON orders (performance_id);
CREATE INDEX orders_to_expire ON orders (expires_at) WHERE status = 'pending_payment';
CREATE INDEX orders_unsettled ON orders (updated_at) WHERE status IN ('paid', 'refunding');

-- Every status change of every order, in order. Never updated or deleted.
CREATE TABLE order_transitions (
    seq         bigserial PRIMARY KEY,
    order_id    uuid NOT NULL REFERENCES orders (order_id),
    from_status text,
    to_status   text NOT NULL,
    reason      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (from_status, to_status) REFERENCES legal_transitions (from_status, to_status),
    CHECK (from_status IS NOT NULL OR to_status = 'pending_payment')
);
CREATE INDEX order_transitions_by_order ON order_transitions (order_id, seq);

CREATE FUNCTION order_transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_transitions is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER order_transitions_no_update BEFORE UPDATE OR DELETE ON order_transitions
    FOR EACH ROW EXECUTE FUNCTION order_transitions_append_only();
CREATE TRIGGER order_transitions_no_truncate BEFORE TRUNCATE ON order_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION order_transitions_append_only();

-- One ticket per seat or general-admission place of a confirmed order. `item` is the seat id or
-- `<area id>#<n>`, so issuing twice issues nothing new.
CREATE TABLE tickets (
    ticket_id      uuid PRIMARY KEY,
    order_id       uuid NOT NULL REFERENCES orders (order_id),
    buyer_id       uuid NOT NULL,
    performance_id uuid NOT NULL,
    item           text NOT NULL,
    seat_id        text,
    area_id        text,
    -- Bumped when a ticket's entry secret is replaced (a transfer): older codes stop working.
    secret_version integer NOT NULL DEFAULT 1,
    status         text NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'void')),
    checked_in_at  timestamptz,
    issued_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, item)
);
CREATE INDEX tickets_by_performance ON tickets (performance_id);

-- Buyers' `Idempotency-Key`s on POST /api/v1/orders: the stored answer is replayed for the same
-- key and body; another body is refused; a request still running answers 409.
CREATE TABLE order_requests (
    buyer_id        uuid NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint     text NOT NULL,
    done            boolean NOT NULL DEFAULT false,
    status_code     integer,
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (buyer_id, idempotency_key)
);
