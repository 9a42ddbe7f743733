-- Ticket types (권종) and presale audiences (선예매).
--
-- An event's prices of the non-standard ticket types of its grades; the standard type (`adult`)
-- costs the grade's price tier. Not tied to price_tiers by a foreign key: replacing the tiers
-- must not drop them silently; a price of a grade that lost its tier is not published.
CREATE TABLE ticket_type_prices (
    event_id    uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    grade       text NOT NULL,
    ticket_type text NOT NULL CHECK (ticket_type IN
                ('youth', 'child', 'senior', 'disabled', 'national_merit')),
    price_krw   bigint NOT NULL CHECK (price_krw >= 0),
    PRIMARY KEY (event_id, grade, ticket_type)
);

-- Member groups an organizer manages (a fan club, a membership): accounts let into the
-- members' presales of the organizer's performances.
CREATE TABLE member_groups (
    id           uuid PRIMARY KEY,
    organizer_id uuid,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE member_group_accounts (
    group_id   uuid NOT NULL REFERENCES member_groups (id) ON DELETE CASCADE,
    account_id uuid NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, account_id)
);

-- Who may hold in a performance's presale windows (kind `presale`) before its general sale: the
-- members of one group, or the holders of access codes, each with the presale's own limit.
-- No row: the presale windows are open to everyone, as before.
CREATE TABLE presale_audiences (
    performance_id uuid PRIMARY KEY REFERENCES performances (id) ON DELETE CASCADE,
    group_id       uuid REFERENCES member_groups (id),
    access_codes   boolean NOT NULL DEFAULT false,
    ticket_limit   integer NOT NULL CHECK (ticket_limit BETWEEN 1 AND 20),
    CHECK ((group_id IS NOT NULL) <> access_codes)
);

-- Access codes of a performance's presale: only their SHA-256 (of `performance_id:CODE`); the
-- seat service binds a code to the first account that uses it.
CREATE TABLE presale_codes (
    performance_id uuid NOT NULL REFERENCES performances (id) ON DELETE CASCADE,
    code_hash      text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (performance_id, code_hash)
);
