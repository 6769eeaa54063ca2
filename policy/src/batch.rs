//! Batch-sign confirmations: an employee holding the batch-sign authorization confirms once
//! with their signing password and may then seal up to a count of documents within a
//! lifetime, both bounded by the enterprise's configuration. Each signature under it takes one
//! use in the transaction of its audit record.

use serde::{Deserialize, Serialize};

use crate::org::Org;
use crate::DenyCode;

/// The most a confirmation may allow (configured by the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchBounds {
    pub max_count: u32,
    pub max_lifetime_seconds: i64,
}

impl Default for BatchBounds {
    fn default() -> BatchBounds {
        BatchBounds {
            max_count: 500,
            max_lifetime_seconds: 3600,
        }
    }
}

/// One confirmation and what is left of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchConfirmation {
    pub id: String,
    pub employee: String,
    /// The seal it is for, if it was confirmed for one seal.
    pub seal: Option<String>,
    pub count: u32,
    pub used: u32,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What an employee asks a confirmation for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchAsk {
    /// Confine it to one seal.
    #[serde(default)]
    pub seal: Option<String>,
    pub count: u32,
    pub lifetime_seconds: i64,
}

/// Opens confirmation `id` for `employee` (who has just given their signing password), as
/// asked and within `bounds`.
pub fn confirm(
    org: &Org,
    employee: &str,
    ask: &BatchAsk,
    bounds: BatchBounds,
    id: &str,
    now: i64,
) -> Result<BatchConfirmation, DenyCode> {
    let e = org.active_employee(employee)?;
    if !e.batch_sign_authorized {
        return Err(DenyCode::BatchSignNotAuthorized);
    }
    if ask.count == 0
        || ask.count > bounds.max_count
        || ask.lifetime_seconds <= 0
        || ask.lifetime_seconds > bounds.max_lifetime_seconds
    {
        return Err(DenyCode::InvalidBatchConfirmation);
    }
    Ok(BatchConfirmation {
        id: id.to_owned(),
        employee: employee.to_owned(),
        seal: ask.seal.clone(),
        count: ask.count,
        used: 0,
        created_at: now,
        expires_at: now.saturating_add(ask.lifetime_seconds),
    })
}

impl BatchConfirmation {
    /// Why a signature by `employee` with `seal` at `now` may not use it, if it may not.
    pub fn refusal(&self, employee: &str, seal: &str, now: i64) -> Option<DenyCode> {
        if self.employee != employee || self.seal.as_deref().is_some_and(|s| s != seal) {
            Some(DenyCode::BatchConfirmationNotFound)
        } else if now >= self.expires_at {
            Some(DenyCode::BatchConfirmationExpired)
        } else if self.used >= self.count {
            Some(DenyCode::BatchConfirmationUsedUp)
        } else {
            None
        }
    }

    /// Takes one use (what the store does atomically with the audit record).
    pub fn consume(&mut self, employee: &str, seal: &str, now: i64) -> Result<(), DenyCode> {
        if let Some(code) = self.refusal(employee, seal, now) {
            return Err(code);
        }
        self.used += 1;
        Ok(())
    }

    pub fn uses_left(&self) -> u32 {
        self.count.saturating_sub(self.used)
    }
}
