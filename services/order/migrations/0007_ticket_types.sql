-- Ticket types (권종): the prices by grade and type the catalog last published with each
-- performance, the type of every seat and place of an order (its lines, priced), and the type of
-- every ticket (the gate checks proof of the types that need it).
ALTER TABLE performances ADD COLUMN prices jsonb;
ALTER TABLE orders ADD COLUMN lines jsonb NOT NULL DEFAULT '[]';
ALTER TABLE tickets ADD COLUMN ticket_type text NOT NULL DEFAULT 'adult';
