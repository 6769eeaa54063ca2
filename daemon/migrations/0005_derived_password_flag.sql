-- Whether an employee has a signing password is whether a hash is stored: the flag column
-- of 0002 is dropped rather than kept in step with password_hash.
ALTER TABLE employees DROP COLUMN has_signing_password;
