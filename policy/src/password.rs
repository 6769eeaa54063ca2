//! The signing password: six digits an employee confirms each manual signature with, and the
//! lockout after wrong tries. The daemon hashes and verifies (Argon2id); the rules are here.

use serde::{Deserialize, Serialize};

use crate::org::{Org, Target};
use crate::role::Permission;
use crate::DenyCode;

/// How many wrong tries in a row lock the password, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordRules {
    pub max_failures: u32,
    pub lockout_seconds: i64,
}

impl Default for PasswordRules {
    fn default() -> Self {
        PasswordRules {
            max_failures: 5,
            lockout_seconds: 15 * 60,
        }
    }
}

/// Wrong tries since the last right one, and the lockout they caused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordState {
    pub failures: u32,
    /// Unix seconds; the password is refused, right or wrong, until then.
    pub locked_until: Option<i64>,
}

/// Exactly six ASCII digits.
pub fn check_format(password: &str) -> Result<(), DenyCode> {
    if password.len() == 6 && password.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DenyCode::InvalidSigningPassword)
    }
}

impl PasswordState {
    /// Before verifying: a locked password is not even checked.
    pub fn admit(&self, now: i64) -> Result<(), DenyCode> {
        match self.locked_until {
            Some(until) if now < until => Err(DenyCode::SigningPasswordLocked),
            _ => Ok(()),
        }
    }

    /// After verifying: the new state, and whether the try passes. The try that reaches
    /// `max_failures` locks the password for `lockout_seconds`; a right one clears the count.
    pub fn after(
        &self,
        correct: bool,
        now: i64,
        rules: PasswordRules,
    ) -> (PasswordState, Result<(), DenyCode>) {
        if let Err(locked) = self.admit(now) {
            return (*self, Err(locked));
        }
        if correct {
            return (PasswordState::default(), Ok(()));
        }
        let failures = self.failures + 1;
        if failures >= rules.max_failures.max(1) {
            let locked = PasswordState {
                failures: 0,
                locked_until: Some(now.saturating_add(rules.lockout_seconds)),
            };
            return (locked, Err(DenyCode::SigningPasswordLocked));
        }
        (
            PasswordState {
                failures,
                locked_until: None,
            },
            Err(DenyCode::SigningPasswordWrong),
        )
    }
}

/// Employees set and change their own password (changing it needs the old one, checked by the
/// caller, which passes `old_confirmed`).
pub fn may_set(
    org: &Org,
    actor: &str,
    employee: &str,
    has_password: bool,
    old_confirmed: bool,
) -> Result<(), DenyCode> {
    org.active_employee(actor)?;
    if actor != employee {
        return Err(DenyCode::PermissionDenied);
    }
    if has_password && !old_confirmed {
        return Err(DenyCode::SigningPasswordRequired);
    }
    Ok(())
}

/// An administrator with organization management over the employee's department clears their
/// password (the employee then sets a new one); their own goes through [`may_set`].
pub fn may_reset(org: &Org, actor: &str, employee: &str) -> Result<(), DenyCode> {
    let admin = org.active_employee(actor)?;
    if actor == employee {
        // One's own is changed with the old one, never reset around it.
        return Err(DenyCode::PermissionDenied);
    }
    let target = org.employee(employee).ok_or(DenyCode::EmployeeNotFound)?;
    let reach = Target {
        department: Some(&target.department),
        own: false,
    };
    if org.can(admin, Permission::OrganizationManagement, reach) {
        Ok(())
    } else {
        Err(DenyCode::PermissionDenied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: PasswordRules = PasswordRules {
        max_failures: 5,
        lockout_seconds: 900,
    };

    #[test]
    fn five_wrong_tries_lock_it_for_fifteen_minutes_and_a_right_one_clears_the_count() {
        let mut s = PasswordState::default();
        for n in 1..5 {
            let (next, r) = s.after(false, 100, RULES);
            assert_eq!((next.failures, r), (n, Err(DenyCode::SigningPasswordWrong)));
            s = next;
        }
        let (locked, r) = s.after(false, 100, RULES);
        assert_eq!(r, Err(DenyCode::SigningPasswordLocked));
        assert_eq!(locked.locked_until, Some(1000));
        // Locked: even the right password is refused until the time is up.
        assert_eq!(
            locked.after(true, 999, RULES).1,
            Err(DenyCode::SigningPasswordLocked)
        );
        assert_eq!(locked.admit(999), Err(DenyCode::SigningPasswordLocked));
        assert_eq!(
            locked.after(true, 1000, RULES),
            (PasswordState::default(), Ok(()))
        );
        let (two, _) = PasswordState::default().after(false, 5, RULES);
        assert_eq!(two.after(true, 6, RULES).0.failures, 0);
    }

    #[test]
    fn six_digits() {
        assert!(check_format("012345").is_ok());
        for bad in ["12345", "1234567", "12345a", "١٢٣٤٥٦", ""] {
            assert_eq!(
                check_format(bad),
                Err(DenyCode::InvalidSigningPassword),
                "{bad}"
            );
        }
    }
}
