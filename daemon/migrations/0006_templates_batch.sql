-- Governance II: templates (an auto-sign one bound to its seal), the auto-sign and batch-sign
-- authorizations of employees, and batch-sign confirmations.
ALTER TABLE employees ADD COLUMN auto_sign_authorized INTEGER NOT NULL DEFAULT 0;
ALTER TABLE employees ADD COLUMN batch_sign_authorized INTEGER NOT NULL DEFAULT 0;

CREATE TABLE templates (
    id       TEXT PRIMARY KEY,
    template TEXT NOT NULL    -- JSON (seald_policy::Template)
);

-- Template PDFs by SHA-256 (a changed template keeps its older PDF for the record).
CREATE TABLE template_pdfs (
    sha256 TEXT PRIMARY KEY,
    pdf    BLOB NOT NULL
);

-- One signing-password confirmation for many signatures. The token the application presents
-- is kept only as its SHA-256; `used` is taken in the transaction of each signature's record.
CREATE TABLE batch_confirmations (
    id           TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    employee     TEXT NOT NULL,
    seal         TEXT,
    count        INTEGER NOT NULL,
    used         INTEGER NOT NULL CHECK (used <= count),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
