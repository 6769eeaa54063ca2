-- Seal governance I: the organization, seal lifecycle and holders, approval flows and the
-- requests going through them, seal-use grants. The rules are seald-policy's; these tables
-- only keep what it decided.

-- The enterprise this seald serves (one row).
CREATE TABLE enterprise (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    credit_code TEXT NOT NULL,
    features    TEXT NOT NULL    -- JSON: auto_sign, page_seal, forced_contract_approval
);

CREATE TABLE departments (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL,
    parent TEXT REFERENCES departments(id)
);

CREATE TABLE employees (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    phone                TEXT NOT NULL,
    department           TEXT NOT NULL REFERENCES departments(id),
    roles                TEXT NOT NULL,   -- JSON array of role ids
    status               TEXT NOT NULL,   -- active | resigned
    has_signing_password INTEGER NOT NULL DEFAULT 0
);

-- Custom roles (the system roles are fixed in seald-policy and not stored).
CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    permissions TEXT NOT NULL,   -- JSON array of permission points
    scope       TEXT NOT NULL    -- own | department | enterprise
);

-- One approval flow per scenario (absent: seald-policy's default flow).
CREATE TABLE approval_flows (
    scenario TEXT PRIMARY KEY,
    flow     TEXT NOT NULL     -- JSON (seald_policy::Flow)
);

-- Approval requests; `request` is the whole request (flow as submitted, history), the other
-- columns are for finding them.
CREATE TABLE approval_requests (
    id         TEXT PRIMARY KEY,
    scenario   TEXT NOT NULL,
    submitter  TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    request    TEXT NOT NULL
);
CREATE INDEX approval_requests_state ON approval_requests (state);

-- Seal-use grants from approved applications; uses_left is consumed in the transaction of
-- the signature's audit record.
CREATE TABLE seal_grants (
    id              TEXT PRIMARY KEY,
    approval        TEXT NOT NULL REFERENCES approval_requests(id),
    seal            TEXT NOT NULL,
    employee        TEXT NOT NULL,
    document_id     TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    uses_left       INTEGER NOT NULL CHECK (uses_left >= 0),
    valid_until     INTEGER NOT NULL
);
CREATE INDEX seal_grants_holder ON seal_grants (employee, seal);

-- Seals: type, source, department, holders, creator, practice authorization.
ALTER TABLE seals ADD COLUMN kind TEXT NOT NULL DEFAULT 'other';
ALTER TABLE seals ADD COLUMN source TEXT NOT NULL DEFAULT 'uploaded';
ALTER TABLE seals ADD COLUMN department TEXT;
ALTER TABLE seals ADD COLUMN holders TEXT NOT NULL DEFAULT '[]';
ALTER TABLE seals ADD COLUMN created_by TEXT;
ALTER TABLE seals ADD COLUMN practice_authorized INTEGER NOT NULL DEFAULT 0;

-- Applications that may name the employee they act for.
ALTER TABLE applications ADD COLUMN acts_for_employees INTEGER NOT NULL DEFAULT 0;
