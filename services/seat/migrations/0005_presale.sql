-- Presale access codes (선예매): each code of a performance is bound to the first account that
-- holds with it (only the code's SHA-256, as the catalog publishes it, is kept), and wrong
-- codes are counted per account so guessing is cut off.
CREATE TABLE presale_redemptions (
    performance_id UUID NOT NULL,
    code_hash      TEXT NOT NULL,
    account_id     UUID NOT NULL,
    redeemed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (performance_id, code_hash)
);
CREATE INDEX presale_redemptions_by_account ON presale_redemptions (performance_id, account_id);

CREATE TABLE presale_code_failures (
    performance_id UUID NOT NULL,
    account_id     UUID NOT NULL,
    failures       INT NOT NULL,
    since          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (performance_id, account_id)
);
