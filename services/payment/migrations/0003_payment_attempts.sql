-- A payment may be attempted again after a definite failure (a decline: no money moved): the
-- same row moves back to `confirming` with the new payment key, and each attempt has its own
-- idempotency key at the PG (`boxoffice-confirm-<order>` for the first, `-<n>` after).
ALTER TABLE payments ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1);
