-- Ticket-type prices are prices too: their changes after a sale opened are audited.
ALTER TABLE catalog_audit DROP CONSTRAINT catalog_audit_field_check;
ALTER TABLE catalog_audit ADD CONSTRAINT catalog_audit_field_check
    CHECK (field IN ('price_tiers', 'ticket_prices', 'ticket_limit', 'starts_at'));
