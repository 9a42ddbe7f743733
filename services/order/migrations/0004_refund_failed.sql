-- `refund_failed`: the payment service gave an order's refund up (the PG refused it for good, or
-- it kept failing): final, an operator must act (docs/operations.md). Money back afterwards
-- (`payment.refunded`) still ends the order `refunded`.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN
        ('pending_payment', 'paid', 'confirmed', 'expired', 'cancelled', 'refunding', 'refunded',
         'refund_failed'));

INSERT INTO legal_transitions (from_status, to_status) VALUES
    ('refunding', 'refund_failed'),
    ('refund_failed', 'refunded');
