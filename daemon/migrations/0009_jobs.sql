-- Batch jobs: a template × rows of values → sealed PDFs. A row goes from pending to sealed in
-- the transaction of its signature's audit record (at most once); `values` are the row's
-- validated field values (JSON), so a resumed job needs nothing but this table.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    job         TEXT NOT NULL,      -- JSON (crate::jobs::Job): template, area, level, starter…
    status      TEXT NOT NULL,      -- validating | running | completed | canceled | stopped | failed
    error       TEXT,               -- the code a stopped or failed job stopped with
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE job_rows (
    job           TEXT NOT NULL REFERENCES jobs(id),
    row           INTEGER NOT NULL,   -- 1 = the first row after the header
    status        TEXT NOT NULL,      -- invalid | pending | sealed
    document_id   TEXT NOT NULL,
    "values"      TEXT NOT NULL,      -- JSON object: field name → value
    errors        TEXT,               -- JSON: [{field, code, message}] of an invalid row
    output_sha256 TEXT,
    audit_seq     INTEGER,
    done_at       INTEGER,
    PRIMARY KEY (job, row)
);
CREATE INDEX job_rows_pending ON job_rows (job, status, row);
