-- NotificationDB: who can be reached, what was bought for when, and the delivery log.

-- Recipients, from user.registered (and the user's own preferences).
CREATE TABLE recipients (
    user_id          uuid PRIMARY KEY,
    email            text NOT NULL,
    name             text NOT NULL,
    phone            text,
    locale           text CHECK (locale IN ('ko', 'en')),
    marketing_opt_in boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Performances' starts, from performance.published; `reminded_at` is the reminder scheduler's
-- state: set in the transaction that queues the performance's reminders, so they are queued
-- once, whatever restarts.
CREATE TABLE performances (
    performance_id uuid PRIMARY KEY,
    starts_at      timestamptz NOT NULL,
    cancelled      boolean NOT NULL DEFAULT false,
    reminded_at    timestamptz
);
CREATE INDEX performances_to_remind ON performances (starts_at) WHERE reminded_at IS NULL;

-- Orders, from order.created / order.confirmed / order.cancelled: whom a payment event is about,
-- and who holds tickets to a performance.
CREATE TABLE orders (
    order_id       uuid PRIMARY KEY,
    buyer_id       uuid NOT NULL,
    performance_id uuid NOT NULL,
    tickets        integer NOT NULL DEFAULT 0,
    status         text NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled'))
);
CREATE INDEX orders_confirmed_by_performance ON orders (performance_id) WHERE status = 'confirmed';

-- The delivery log: one row per (event, channel, recipient), so an event delivered twice sends
-- once. The dispatcher takes due rows (`next_attempt_at`), marks them `sending` with a lease,
-- sends with no transaction open, and records the outcome.
CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,
    event_id        text NOT NULL,
    kind            text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient_id    uuid NOT NULL,
    data            jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'skipped', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    address         text,
    locale          text,
    subject         text,
    provider_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    redriven        integer NOT NULL DEFAULT 0,
    UNIQUE (event_id, channel, recipient_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_by_status ON deliveries (status, created_at DESC);

-- Payment events whose order this service has not seen yet (the payment topic is not ordered
-- with the order topic): kept here until the order's buyer is known, then queued.
CREATE TABLE parked (
    event_id text PRIMARY KEY,
    order_id uuid NOT NULL,
    kind     text NOT NULL,
    data     jsonb NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_by_order ON parked (order_id);

-- When each background job last ran (the reminder scheduler), for operators and tests.
CREATE TABLE job_runs (
    job         text PRIMARY KEY,
    last_run_at timestamptz NOT NULL
);
