-- Review fixes (money path):
-- * `flagged`: a payment whose PG answer cannot be ours (another order, payment or amount) or
--   that the PG shows cancelled though we never approved it. Never approved, looked at no more;
--   an operator settles it (docs/operations.md).
-- * refunds end `failed` when the PG kept failing for `settle.refund_max_attempts` attempts
--   (`rejected` stays the PG's, or our books', definite refusal); both emit
--   `payment.refund_failed`.
-- * `webhook_looked_at`: when a webhook last made us read the payment back from the PG, so a
--   flood of (unsigned) notices costs at most one PG lookup per payment per
--   `payment.webhook_min_interval_ms`, across replicas.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN
    ('confirming', 'unknown', 'approved', 'failed', 'partially_refunded', 'refunded', 'flagged'));
ALTER TABLE payments ADD COLUMN webhook_looked_at timestamptz;

ALTER TABLE refunds DROP CONSTRAINT refunds_status_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_status_check CHECK (status IN
    ('pending', 'done', 'rejected', 'failed', 'nothing_to_refund'));
