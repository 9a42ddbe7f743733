-- Safe account linking and sandbox identities (issue 9).

-- Whether the account proved it owns its email. Unverified by default: a password sign-up proves
-- nothing (the verification link comes with the notification service); an account made by a
-- provider that vouches for the address starts verified. Social email links only reach verified
-- accounts.
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
-- Made by a sandbox identity (the fake OAuth provider mints any email): only sandbox identities
-- it created ever sign in to it, and never once it holds the admin role.
ALTER TABLE users ADD COLUMN sandbox boolean NOT NULL DEFAULT false;

-- Whether the identity came from a sandbox provider.
ALTER TABLE identities ADD COLUMN sandbox boolean NOT NULL DEFAULT false;

-- A sign-in is bound to the browser that started it: the SHA-256 of the random value in its
-- HttpOnly cookie. Rows from before this migration have none and are refused.
ALTER TABLE oauth_states ADD COLUMN browser_hash bytea;
-- Set when a logged-in user links a provider from the profile: the callback links to this account.
ALTER TABLE oauth_states ADD COLUMN link_user_id uuid REFERENCES users (id) ON DELETE CASCADE;
