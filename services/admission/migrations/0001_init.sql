-- AdmissionDB: the waiting rooms and the key that signs admission passes. The queues themselves
-- live in the queue store (Redis, or memory in standalone).

-- One room per performance that the catalog published, with or without a waiting room.
-- `seed`: the draw's secret seed (32 bytes), made when the room is; SHA-256(seed) is published
-- from then on and the seed only once the draw has run (`drawn_at`). `draw_refs`: the references
-- (SHA-256 of each pre-queue token, 32 bytes each, ascending) the draw ordered.
CREATE TABLE rooms (
    performance_id uuid PRIMARY KEY,
    waiting_room   boolean NOT NULL,
    opens_at       timestamptz NOT NULL,
    closes_at      timestamptz NOT NULL,
    revision       bigint NOT NULL,
    seed           bytea NOT NULL CHECK (length(seed) = 32),
    rate_per_sec   double precision NOT NULL CHECK (rate_per_sec >= 0),
    max_active     bigint CHECK (max_active IS NULL OR max_active >= 0),
    paused         boolean NOT NULL DEFAULT false,
    drawn_at       timestamptz,
    draw_refs      bytea,
    -- The queue store forgot the room's queue (its sale closed long ago).
    forgotten_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The Ed25519 key that signs admission passes, shared by every replica (the oldest signs).
CREATE TABLE signing_keys (
    kid        text PRIMARY KEY,
    seed       bytea NOT NULL CHECK (length(seed) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
