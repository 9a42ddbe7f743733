-- Sessions and throttling that hold under concurrency (issue 9).

-- One row per sign-in (a refresh-token family). Every operation that creates a token in a family
-- (refresh) or revokes it (logout, reuse detection, password change, role change) locks this row
-- first, so a revocation cannot miss a token that a concurrent refresh is creating, and a refresh
-- refuses a revoked family whatever state its tokens are in. `created_at` is when the user signed
-- in (password or provider): the proof of a recent login for setting a first password.
CREATE TABLE refresh_families (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,               -- that of its newest token
    revoked_at timestamptz
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_expires ON refresh_families (expires_at);

-- The families of tokens issued before this migration. A family is revoked as a whole, so one
-- revoked token means the family was (a token a racing refresh created after it dies with it).
INSERT INTO refresh_families (id, user_id, created_at, expires_at, revoked_at)
SELECT family_id,
       (array_agg(user_id))[1],
       min(created_at),
       max(expires_at),
       CASE WHEN bool_or(revoked_at IS NOT NULL) THEN max(revoked_at) END
FROM refresh_tokens
GROUP BY family_id;

ALTER TABLE refresh_tokens
    ADD CONSTRAINT refresh_tokens_family_fk
    FOREIGN KEY (family_id) REFERENCES refresh_families (id) ON DELETE CASCADE;

-- The sweeper prunes expired sign-ins under way through this index.
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);

-- Fixed-window request counters per client address for sign-up (`signup:<address>`) and the
-- OAuth authorize endpoint (`authorize:<address>`).
CREATE TABLE rate_limits (
    key            text PRIMARY KEY,
    hits           integer NOT NULL,
    window_ends_at timestamptz NOT NULL
);
CREATE INDEX rate_limits_window ON rate_limits (window_ends_at);
