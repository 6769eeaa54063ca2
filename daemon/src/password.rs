//! Employees' signing passwords in the running daemon: Argon2id hashes (PHC strings), checked
//! on a blocking thread, one try at a time per employee so that concurrent wrong tries cannot
//! slip past the lockout, each try's outcome committed with its audit record. The rules
//! (six digits, lockout) are seald-policy's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use seald_audit::{Decision, Entry};
use seald_policy::DenyCode;
use zeroize::Zeroizing;

use crate::problem::ApiError;
use crate::state::AppState;
use crate::store::Change;

/// The header a signature's signing password comes in. It is never logged or recorded.
pub const HEADER: &str = "seald-signing-password";

/// The signing password of a request, if it carries one.
pub fn from_header(headers: &HeaderMap) -> Result<Option<Zeroizing<String>>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .ok()
        .filter(|t| seald_policy::password::check_format(t).is_ok())
        .ok_or_else(|| ApiError::governance(DenyCode::InvalidSigningPassword))?;
    Ok(Some(Zeroizing::new(text.to_owned())))
}

/// One lock per employee, for the time of a try.
#[derive(Debug, Default)]
pub struct Tries {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Tries {
    fn lock(&self, employee: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget locks nobody holds, so the map does not grow with every employee ever seen.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(employee.to_owned()).or_default().clone()
    }
}

/// An Argon2id hash of `password` with a fresh salt.
pub async fn hash(password: Zeroizing<String>) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)
        .map_err(|e| ApiError::internal(format!("no randomness for a salt: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(format!("cannot hash the signing password: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

async fn verify(password: Zeroizing<String>, phc: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| {
            ApiError::internal(format!("a stored signing password hash is unreadable: {e}"))
        })?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

/// Whether `confirm` recorded this refusal already (a wrong or locked password).
pub fn recorded(e: &ApiError) -> bool {
    e.code == DenyCode::SigningPasswordWrong.code()
        || e.code == DenyCode::SigningPasswordLocked.code()
}

/// What a try of `employee`'s signing password came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// The password is right.
    Confirmed,
    /// The employee has no signing password (policy then refuses manual sealing).
    NotSet,
}

/// Tries `password` as `employee`'s signing password. A wrong or locked try is refused here
/// and audited with `refusal` (the entry of the request it belongs to), together with the new
/// wrong-try count; the caller answers the error without recording it again.
pub async fn confirm(
    state: &AppState,
    employee: &str,
    password: Zeroizing<String>,
    refusal: Entry,
) -> Result<Confirmation, ApiError> {
    let lock = state.password_tries.lock(employee);
    let _one_try_at_a_time = lock.lock().await;
    let (hash, before) = state.store.signing_password(employee).await?;
    let Some(hash) = hash else {
        return Ok(Confirmation::NotSet);
    };
    let now = crate::clock::now_unix();
    let rules = state.config.signing_password.rules();
    let (after, outcome) = match before.admit(now) {
        Err(locked) => (before, Err(locked)),
        Ok(()) => before.after(verify(password, hash).await?, now, rules),
    };
    let change = (after != before).then(|| Change::PasswordAttempt {
        employee: employee.to_owned(),
        state: after,
    });
    match outcome {
        Ok(()) => {
            if let Some(change) = change {
                // A right try after wrong ones starts the count afresh.
                let mut entry = refusal;
                entry.action = "signing_password.confirm".to_owned();
                entry.decision = Decision::Allowed;
                entry.reason = None;
                state.audit.append(entry, change).await?;
            }
            Ok(Confirmation::Confirmed)
        }
        Err(code) => {
            let mut e = ApiError::governance(code);
            if code == DenyCode::SigningPasswordWrong {
                let left = rules.max_failures.saturating_sub(after.failures);
                e.detail = format!("{}; {left} more wrong tries lock it", code.explain());
            }
            let mut entry = refusal;
            entry.decision = Decision::Denied;
            entry.reason = Some(code.code().to_owned());
            state.metrics.denied(code.code());
            state
                .audit
                .append(entry, change.unwrap_or(Change::None))
                .await?;
            Err(e)
        }
    }
}
