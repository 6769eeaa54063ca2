-- Registered client applications (mTLS principals), by the SHA-256 of their certificate's
-- SubjectPublicKeyInfo.
CREATE TABLE applications (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    fingerprint     TEXT NOT NULL UNIQUE,
    certificate_pem TEXT NOT NULL,
    roles           TEXT NOT NULL,   -- JSON array of role names
    seals           TEXT NOT NULL,   -- JSON array of seal ids
    templates       TEXT,            -- JSON array of template ids, or NULL for any
    enabled         INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- Seals: a key on a configured token, its certificate chain and its image.
CREATE TABLE seals (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    token       TEXT NOT NULL,
    key_label   TEXT NOT NULL,
    chain_pem   TEXT NOT NULL,
    image_png   BLOB,
    status      TEXT NOT NULL,   -- active | disabled
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- The audit log: an append-only hash chain (see seald-audit and docs/audit.md).
CREATE TABLE audit_records (
    seq           INTEGER PRIMARY KEY,
    time          TEXT NOT NULL,
    principal     TEXT NOT NULL,
    action        TEXT NOT NULL,
    seal          TEXT,
    document_id   TEXT,
    input_sha256  TEXT,
    output_sha256 TEXT,
    decision      TEXT NOT NULL,
    reason        TEXT,
    request_id    TEXT NOT NULL,
    detail        TEXT,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);

-- Signed statements of the head, by the audit key.
CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    head_hash TEXT NOT NULL,
    time      TEXT NOT NULL,
    signature BLOB NOT NULL
);

-- Responses kept for Idempotency-Key replays.
CREATE TABLE idempotency (
    application   TEXT NOT NULL,
    key           TEXT NOT NULL,
    body_sha256   TEXT NOT NULL,
    audit_seq     INTEGER NOT NULL,
    audit_hash    TEXT NOT NULL,
    output_path   TEXT NOT NULL,   -- the kept response, under the data dir
    output_sha256 TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (application, key)
);
