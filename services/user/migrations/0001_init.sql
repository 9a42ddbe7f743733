-- The user service's database (UserDB): accounts, social identities, refresh tokens, the keys that
-- sign access tokens, pending OAuth sign-ins and login throttling counters.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE,          -- normalized (trimmed, lowercase)
    name          text NOT NULL,
    phone         text,                          -- E.164, e.g. +821012345678
    password_hash text,                          -- argon2id PHC string; NULL for social-only accounts
    roles         text[] NOT NULL DEFAULT '{buyer}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A provider account (kakao, naver, google) linked to a user.
CREATE TABLE identities (
    provider   text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user ON identities (user_id);

-- Opaque refresh tokens, stored as SHA-256. Each rotation spends one row and adds the next in
-- the same family; presenting a spent token revokes the whole family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    access_jti  uuid NOT NULL,                   -- the access token issued with it
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    spent_at    timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_jti ON refresh_tokens (access_jti);

-- Ed25519 keys that sign access tokens. A new key is published at once and signs from
-- `activates_at` (so verifiers learn it first); the key it replaces retires then and stays
-- published until the tokens it signed have expired.
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    seed         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activates_at timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz
);

-- Social sign-ins under way: the `state` (stored hashed) with its PKCE verifier and nonce.
CREATE TABLE oauth_states (
    state_hash    bytea PRIMARY KEY,
    provider      text NOT NULL,
    code_verifier text NOT NULL,
    nonce         text NOT NULL,
    expires_at    timestamptz NOT NULL
);

-- Failed login counters per account (`email:<address>`) and per client (`ip:<address>`).
CREATE TABLE login_attempts (
    key             text PRIMARY KEY,
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until    timestamptz
);
