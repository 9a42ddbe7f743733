-- A publication travels as `performance.seats` chunks followed by a `performance.published`
-- header (version 2). What has arrived of a revision waits here until the header and every chunk
-- of it are in; then the assembled spec goes to `performances` and the revision's rows (and those
-- of older revisions) are deleted.

-- Seat chunks of revisions newer than the installed one.
CREATE TABLE publication_chunks (
    performance_id UUID NOT NULL,
    revision       BIGINT NOT NULL,
    chunk          INT NOT NULL CHECK (chunk >= 0),
    chunks         INT NOT NULL CHECK (chunk < chunks),
    -- The `performance.seats` payload.
    body           JSONB NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (performance_id, revision, chunk)
);

-- Headers that came before their last chunk.
CREATE TABLE publication_headers (
    performance_id UUID NOT NULL,
    revision       BIGINT NOT NULL,
    -- The `performance.published` payload.
    body           JSONB NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (performance_id, revision)
);
