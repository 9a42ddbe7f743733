-- Signing keys retired at once, and their seeds sealed at rest.
--
-- `seed_kek`: NULL when `seed` holds the 32-byte seed as it is; otherwise the id of the
-- key-encryption key (`user.tokens.key_encryption_key`, `kek-` and 12 hex digits) that sealed it,
-- and `seed` holds the XChaCha20-Poly1305 nonce (24 bytes) followed by the sealed seed and tag
-- (48 bytes), with the kid as associated data. The service seals unencrypted seeds at start
-- when it has a key-encryption key.
--
-- `revoked_at`: an administrator retired the key at once (a compromise): it is no longer
-- published, trusted or used to sign, whatever `retired_at` says.
ALTER TABLE signing_keys
    ADD COLUMN seed_kek   text,
    ADD COLUMN revoked_at timestamptz;
