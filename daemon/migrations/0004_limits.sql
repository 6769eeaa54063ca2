-- Limits (governance II): a seal's caps and time windows, the enterprise's time zone and
-- contract quota, and the daily consumption records they are checked against.
ALTER TABLE seals ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
ALTER TABLE enterprise ADD COLUMN utc_offset_minutes INTEGER NOT NULL DEFAULT 480;
ALTER TABLE enterprise ADD COLUMN contract_quota INTEGER;

-- Signatures per seal per local day (days since 1970-01-01 in the enterprise's zone).
CREATE TABLE seal_usage (
    seal  TEXT NOT NULL,
    day   INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (seal, day)
);

-- Contracts counted against the quota, per local day, and which documents were counted.
CREATE TABLE quota_usage (
    day   INTEGER PRIMARY KEY,
    count INTEGER NOT NULL
);
CREATE TABLE quota_documents (
    document_id TEXT PRIMARY KEY,
    day         INTEGER NOT NULL
);
