-- PayDB: the orders the payment service learned from the order service, one payment per order
-- (its current state), the append-only ledger every state change of a payment goes through,
-- refunds to make at the PG, and the buyers' confirm idempotency keys.

-- Orders as `order.created` / `order.cancelled` describe them: what a confirm is checked against.
CREATE TABLE orders (
    order_id      uuid PRIMARY KEY,
    buyer_id      uuid NOT NULL,
    amount_krw    bigint NOT NULL CHECK (amount_krw > 0),
    expires_at    timestamptz NOT NULL,
    cancelled_at  timestamptz,
    cancel_reason text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The current state of each order's payment: the fold of its ledger entries (see
-- src/domain.rs), written in the same transaction as each entry. At most one payment per order:
-- the primary key is the order.
CREATE TABLE payments (
    order_id        uuid PRIMARY KEY REFERENCES orders (order_id),
    buyer_id        uuid NOT NULL,
    payment_key     text NOT NULL,
    amount_krw      bigint NOT NULL CHECK (amount_krw > 0),
    status          text NOT NULL CHECK (status IN
                    ('confirming', 'unknown', 'approved', 'failed', 'partially_refunded', 'refunded')),
    refunded_krw    bigint NOT NULL DEFAULT 0 CHECK (refunded_krw >= 0 AND refunded_krw <= amount_krw),
    approved_at     timestamptz,
    late            boolean NOT NULL DEFAULT false,
    failure_code    text,
    failure_message text,
    -- The last ledger entry applied.
    ledger_seq      bigint NOT NULL,
    -- Reconciliation: how often the PG was asked, and when to ask next (confirming/unknown only).
    checks          integer NOT NULL DEFAULT 0,
    next_check_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_to_check ON payments (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX payments_by_key ON payments (payment_key);

-- Every state change of every payment, in order. Never updated or deleted.
CREATE TABLE payment_ledger (
    seq         bigserial PRIMARY KEY,
    order_id    uuid NOT NULL REFERENCES payments (order_id),
    entry       jsonb NOT NULL,
    status      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_ledger_by_order ON payment_ledger (order_id, seq);

CREATE FUNCTION payment_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payment_ledger is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER payment_ledger_no_update BEFORE UPDATE OR DELETE ON payment_ledger
    FOR EACH ROW EXECUTE FUNCTION payment_ledger_append_only();
CREATE TRIGGER payment_ledger_no_truncate BEFORE TRUNCATE ON payment_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION payment_ledger_append_only();

-- Refunds to make at the PG: from `refund.requested` (key: its refund id) or our own (a charge
-- that arrived after the payment was reported failed, key `late-<order id>`). The amount is fixed
-- at the first attempt (`cancel_krw`) so a retry sends the PG the same body under the same
-- idempotency key.
CREATE TABLE refunds (
    refund_key      text PRIMARY KEY,
    order_id        uuid NOT NULL,
    -- What was asked for; NULL: whatever is left to refund.
    amount_krw      bigint CHECK (amount_krw > 0),
    reason          text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN
                    ('pending', 'done', 'rejected', 'nothing_to_refund')),
    cancel_krw      bigint,
    error           text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX refunds_pending ON refunds (next_attempt_at) WHERE status = 'pending';
CREATE INDEX refunds_by_order ON refunds (order_id, created_at);

-- Buyers' `Idempotency-Key`s on confirm: the same key with another body is refused.
CREATE TABLE confirm_requests (
    buyer_id        uuid NOT NULL,
    idempotency_key text NOT NULL,
    order_id        uuid NOT NULL,
    fingerprint     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (buyer_id, idempotency_key)
);
