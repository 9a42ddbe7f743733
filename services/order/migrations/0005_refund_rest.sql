-- The rest of a partial refund: a buyer's cancellation (refunded per the policy, minus its fee)
-- that met the seat service's refusal of the sale. The buyer paid for a sale that never
-- happened, so what the first refund kept goes back too (a second refund of "everything left",
-- never more than was charged), also after the first one was made or failed.
INSERT INTO legal_transitions (from_status, to_status) VALUES
    ('refunded', 'refunding'),
    ('refund_failed', 'refunding');
