-- What the seat service last told about each published performance (performance.availability):
-- kept newest by (epoch, version); a performance with nothing available reads sold out.
CREATE TABLE performance_availability (
    performance_id  uuid PRIMARY KEY REFERENCES performances (id) ON DELETE CASCADE,
    epoch           bigint NOT NULL,
    version         bigint NOT NULL,
    -- {grade: seats and places on sale}
    available       jsonb NOT NULL,
    available_total bigint NOT NULL,
    held            bigint NOT NULL,
    sold            bigint NOT NULL,
    -- when the seat service read the counts
    counted_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
