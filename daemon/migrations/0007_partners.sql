-- Partner enterprises: applications registered for one, the authorizations this enterprise
-- grants them, and their invitation links.
ALTER TABLE applications ADD COLUMN partner TEXT;  -- the partner's unified social credit code

CREATE TABLE partner_authorizations (
    id            TEXT PRIMARY KEY,
    partner       TEXT NOT NULL,
    authorization TEXT NOT NULL    -- JSON (seald_policy::partner::PartnerAuthorization)
);
CREATE INDEX partner_authorizations_partner ON partner_authorizations (partner);

-- The link's token is kept only as its SHA-256; `accepted` makes it single-use.
CREATE TABLE partner_invitations (
    id           TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    accepted     INTEGER NOT NULL DEFAULT 0,
    invitation   TEXT NOT NULL      -- JSON (seald_policy::partner::PartnerInvitation)
);
