-- Messages: one row per accepted message. Times are Unix milliseconds.
CREATE TABLE messages (
    seq                INTEGER PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    to_number          TEXT NOT NULL,
    text               TEXT,
    target_kind        TEXT NOT NULL,
    target             TEXT NOT NULL,
    status             TEXT NOT NULL,
    attempts           TEXT NOT NULL DEFAULT '[]',
    message_ids        TEXT NOT NULL DEFAULT '[]',
    metadata           TEXT,
    callback_url       TEXT,
    idem_key           TEXT UNIQUE,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    lease              INTEGER NOT NULL DEFAULT 0,
    lease_until        INTEGER,
    not_before         INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
-- The worker's question: what is ready for this target, oldest first.
CREATE INDEX messages_pending ON messages (target_kind, target, seq)
    WHERE status IN ('queued', 'sending');
CREATE INDEX messages_status ON messages (status, seq);
CREATE INDEX messages_updated ON messages (updated_at);

-- Gateway message ids, to find a message from its delivery receipt.
CREATE TABLE provider_ids (
    gateway     TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    message_seq INTEGER NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    PRIMARY KEY (gateway, provider_id)
);

-- Status callbacks waiting to be delivered.
CREATE TABLE callbacks (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL,
    url         TEXT NOT NULL,
    status      TEXT NOT NULL,
    tries       INTEGER NOT NULL DEFAULT 0,
    not_before  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX callbacks_due ON callbacks (not_before);

-- Gateways and routes created through the API (the TOML table as JSON).
CREATE TABLE definitions (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);

-- API tokens: only the SHA-256 of each.
CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    scope      TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Per-store settings, e.g. the secret that signs status callbacks.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
