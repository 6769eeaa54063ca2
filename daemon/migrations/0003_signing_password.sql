-- Signing passwords (governance II): an Argon2id hash (PHC string) per employee, and the
-- lockout after wrong tries.
ALTER TABLE employees ADD COLUMN password_hash TEXT;
ALTER TABLE employees ADD COLUMN password_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE employees ADD COLUMN password_locked_until INTEGER;
