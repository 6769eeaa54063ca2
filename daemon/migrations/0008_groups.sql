-- Groups: this enterprise as the parent of member subsidiaries whose seals it keeps, the
-- scopes the members grant, and what members' own contract quotas have counted.
ALTER TABLE seals ADD COLUMN enterprise TEXT;   -- a member's seal: its credit code

CREATE TABLE group_members (
    credit_code TEXT PRIMARY KEY,
    member      TEXT NOT NULL     -- JSON (seald_policy::group::GroupMember)
);

-- Contracts counted against a member's own quota, per local day (those drawn on the
-- parent's pool count in quota_usage).
CREATE TABLE member_quota_usage (
    member TEXT NOT NULL,
    day    INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (member, day)
);
