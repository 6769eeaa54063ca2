//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cryptoki::error::{Error as CkError, RvError};

use crate::key::KeySelector;

/// Which PIN a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PinRole {
    /// The user (crypto officer) PIN that unlocks signing keys.
    User,
    /// The security officer PIN that initializes the token and unblocks the user PIN.
    So,
}

impl fmt::Display for PinRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinRole::User => "user",
            PinRole::So => "SO",
        })
    }
}

/// What the token says about the remaining tries of a PIN after a wrong one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinTries {
    pub count_low: bool,
    pub final_try: bool,
    /// This wrong PIN used up the last try.
    pub now_locked: bool,
}

impl fmt::Display for PinTries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.now_locked {
            f.write_str("; the PIN is now LOCKED: unblock it with `sealctl token unblock-pin` (needs the SO PIN)")
        } else if self.final_try {
            f.write_str("; the token reports FINAL TRY: one more wrong PIN locks it")
        } else if self.count_low {
            f.write_str("; the token reports few tries left before the PIN locks")
        } else {
            Ok(())
        }
    }
}

/// A PKCS#11 return value with its spec name (`CKR_PIN_INCORRECT`) and the call that returned
/// it (`C_Login`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFailure {
    pub rv: RvError,
    pub function: &'static str,
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} returned {}", self.function, ckr_name(self.rv))
    }
}

/// `RvError::PinIncorrect` → `CKR_PIN_INCORRECT`.
pub fn ckr_name(rv: RvError) -> String {
    let debug = format!("{rv:?}");
    let mut out = String::from("CKR_");
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Everything that can go wrong in seald's key layer. Messages say what happened and, where an
/// operator can act, what to do; they never contain a PIN.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot load the PKCS#11 module {path}: {reason} (check --module / SEALD_PKCS11_MODULE; Debian's SoftHSM2 is /usr/lib/softhsm/libsofthsm2.so)")]
    ModuleLoad { path: PathBuf, reason: String },

    #[error("the PKCS#11 module {path} failed to initialize: {failure}")]
    ModuleInit { path: PathBuf, failure: CallFailure },

    #[error(
        "no token labelled '{label}' is present ({}){}",
        list_or_none(available),
        unreadable_slots(unreadable)
    )]
    TokenNotFound {
        label: String,
        available: Vec<String>,
        /// Slots reporting a token that cannot describe itself (its module may need
        /// re-initializing).
        unreadable: Vec<u64>,
    },

    #[error("more than one token is labelled '{label}' (slots {slots:?}); select one with --slot")]
    TokenAmbiguous { label: String, slots: Vec<u64> },

    #[error("slot {slot} does not exist (slots: {})", list_or_none(available))]
    SlotNotFound { slot: u64, available: Vec<String> },

    #[error("slot {slot} has no token in it")]
    NoTokenInSlot { slot: u64 },

    #[error("the token in slot {slot} is not initialized; initialize it with `sealctl token init --slot {slot} --label LABEL --yes`")]
    TokenNotInitialized { slot: u64 },

    #[error("the user PIN of token '{token}' is not set; set it with `sealctl token unblock-pin` (needs the SO PIN)")]
    UserPinNotInitialized { token: String },

    #[error("slot {slot} already holds an initialized token '{label}'; re-initializing erases every key and certificate on it: add --reinit (with --yes) if that is what you want")]
    TokenAlreadyInitialized { slot: u64, label: String },

    #[error("token '{token}' refused the {role} login: {failure}")]
    LoginFailed {
        token: String,
        role: PinRole,
        failure: CallFailure,
    },

    #[error("the {role} PIN was rejected by token '{token}'{tries}")]
    PinIncorrect {
        token: String,
        role: PinRole,
        tries: PinTries,
    },

    #[error("the {role} PIN of token '{token}' is locked{}", locked_hint(*role))]
    PinLocked { token: String, role: PinRole },

    #[error(
        "the new {role} PIN does not fit token '{token}': it must be {min} to {max} characters"
    )]
    PinLength {
        token: String,
        role: PinRole,
        min: usize,
        max: usize,
    },

    #[error("token '{token}' refused the new {role} PIN ({failure}); choose another")]
    PinRefused {
        token: String,
        role: PinRole,
        failure: CallFailure,
    },

    #[error("the PIN is empty")]
    PinEmpty,

    #[error("no {what} {key} on token '{token}'")]
    KeyNotFound {
        token: String,
        key: KeySelector,
        what: &'static str,
    },

    #[error("{count} private keys match {key} on token '{token}'; select one by --id")]
    KeyAmbiguous {
        token: String,
        key: KeySelector,
        count: usize,
    },

    #[error("token '{token}' already holds a key labelled '{label}'; delete it first or choose another label")]
    KeyExists { token: String, label: String },

    #[error("key {key} on token '{token}' cannot be used: {reason}")]
    KeyUnusable {
        token: String,
        key: KeySelector,
        reason: String,
    },

    #[error("token '{token}' offers no mechanism for {algorithm}{}", if *.disabled { " (some were disabled by configuration)" } else { "" })]
    MechanismUnsupported {
        token: String,
        algorithm: String,
        disabled: bool,
    },

    #[error("unknown mechanism name '{0}' (expected a name like CKM_SHA256_RSA_PKCS)")]
    UnknownMechanism(String),

    #[error("token '{token}' is unavailable: {cause}; seald keeps reconnecting in the background (next attempt in {} ms)", retry_in.as_millis())]
    TokenUnavailable {
        token: String,
        cause: String,
        retry_in: Duration,
    },

    #[error("all {sessions} sessions of token '{token}' stayed busy for {} ms", waited.as_millis())]
    PoolBusy {
        token: String,
        sessions: usize,
        waited: Duration,
    },

    #[error("invalid certificate{}: {reason}", context.as_deref().map(|c| format!(" in {c}")).unwrap_or_default())]
    Certificate {
        context: Option<String>,
        reason: String,
    },

    #[error("the certificate's public key does not match key {key} on token '{token}'")]
    CertificateKeyMismatch { token: String, key: KeySelector },

    #[error("invalid subject '{subject}': {reason} (expected e.g. \"CN=Contract Seal,O=Example Co,C=CN\")")]
    InvalidSubject { subject: String, reason: String },

    #[error("the token returned a malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },

    #[error("token '{token}': {failure}")]
    Call { token: String, failure: CallFailure },

    #[error("PKCS#11 call failed: {failure}")]
    ModuleCall { failure: CallFailure },

    #[error("{0}")]
    InvalidArgument(String),

    #[error("cannot initialize slot {slot}: a program has sessions open on it (stop seald and other users of the token first)")]
    SessionsOpen { slot: u64 },

    #[error("the PKCS#11 module {path} {what} for {} s; giving up", waited.as_secs())]
    ModuleStuck {
        path: PathBuf,
        what: &'static str,
        waited: Duration,
    },

    #[error("the signing task stopped before it finished: {0}")]
    TaskFailed(String),

    #[error("PKCS#11 wrapper error: {0}")]
    Wrapper(String),
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none found".to_owned()
    } else {
        format!("present: {}", items.join(", "))
    }
}

fn unreadable_slots(slots: &[u64]) -> String {
    if slots.is_empty() {
        String::new()
    } else {
        format!("; slots {slots:?} report a token that cannot be read")
    }
}

fn locked_hint(role: PinRole) -> &'static str {
    match role {
        PinRole::User => "; unblock it with `sealctl token unblock-pin` (needs the SO PIN)",
        PinRole::So => {
            "; only re-initializing the token (which erases it) or the vendor's tool can help"
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Splits a cryptoki error into the PKCS#11 return value (if it is one) and the call name.
pub(crate) fn call_failure(err: &CkError) -> Option<CallFailure> {
    match err {
        CkError::Pkcs11(rv, function) => Some(CallFailure {
            rv: *rv,
            function: function_name(*function),
        }),
        _ => None,
    }
}

fn function_name(function: cryptoki::context::Function) -> &'static str {
    use cryptoki::context::Function as F;
    // Names for the calls this crate makes; the rest are rare enough to share one label.
    match function {
        F::Initialize => "C_Initialize",
        F::Finalize => "C_Finalize",
        F::GetSlotList => "C_GetSlotList",
        F::GetSlotInfo => "C_GetSlotInfo",
        F::GetTokenInfo => "C_GetTokenInfo",
        F::GetMechanismList => "C_GetMechanismList",
        F::InitToken => "C_InitToken",
        F::InitPIN => "C_InitPIN",
        F::SetPIN => "C_SetPIN",
        F::OpenSession => "C_OpenSession",
        F::CloseSession => "C_CloseSession",
        F::GetSessionInfo => "C_GetSessionInfo",
        F::Login => "C_Login",
        F::Logout => "C_Logout",
        F::CreateObject => "C_CreateObject",
        F::DestroyObject => "C_DestroyObject",
        F::GetAttributeValue => "C_GetAttributeValue",
        F::FindObjectsInit => "C_FindObjectsInit",
        F::FindObjects => "C_FindObjects",
        F::FindObjectsFinal => "C_FindObjectsFinal",
        F::SignInit => "C_SignInit",
        F::Sign => "C_Sign",
        F::GenerateKeyPair => "C_GenerateKeyPair",
        F::GenerateRandom => "C_GenerateRandom",
        _ => "a PKCS#11 call",
    }
}

impl Error {
    /// Wraps a cryptoki error from a call on `token`.
    pub(crate) fn call(token: &str, err: CkError) -> Self {
        match call_failure(&err) {
            Some(failure) => Error::Call {
                token: token.to_owned(),
                failure,
            },
            None => Error::Wrapper(err.to_string()),
        }
    }

    /// Wraps a cryptoki error from a module-level call (no token yet).
    pub(crate) fn module_call(err: CkError) -> Self {
        match call_failure(&err) {
            Some(failure) => Error::ModuleCall { failure },
            None => Error::Wrapper(err.to_string()),
        }
    }

    /// The PKCS#11 return value behind this error, if there is one.
    pub fn return_value(&self) -> Option<RvError> {
        match self {
            Error::Call { failure, .. }
            | Error::ModuleCall { failure }
            | Error::ModuleInit { failure, .. }
            | Error::LoginFailed { failure, .. }
            | Error::PinRefused { failure, .. } => Some(failure.rv),
            _ => None,
        }
    }
}

impl From<Error> for seald_signer::SignError {
    fn from(err: Error) -> Self {
        use seald_signer::SignErrorKind as K;
        let kind = match &err {
            Error::TokenUnavailable { .. } => K::Unavailable,
            Error::PoolBusy { .. } => K::Busy,
            Error::PinIncorrect { .. }
            | Error::PinLocked { .. }
            | Error::KeyNotFound { .. }
            | Error::KeyAmbiguous { .. }
            | Error::KeyUnusable { .. }
            | Error::MechanismUnsupported { .. }
            | Error::TokenNotFound { .. }
            | Error::TokenNotInitialized { .. }
            | Error::UserPinNotInitialized { .. }
            | Error::PinLength { .. }
            | Error::PinRefused { .. }
            | Error::LoginFailed { .. } => K::Misconfigured,
            _ => K::Failed,
        };
        seald_signer::SignError::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_values_get_their_spec_names() {
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(RvError::ObjectHandleInvalid),
            "CKR_OBJECT_HANDLE_INVALID"
        );
    }

    #[test]
    fn wrong_pin_message_carries_the_tries_flags() {
        let err = Error::PinIncorrect {
            token: "seal".into(),
            role: PinRole::User,
            tries: PinTries {
                count_low: true,
                final_try: true,
                now_locked: false,
            },
        };
        let text = err.to_string();
        assert!(
            text.contains("user PIN was rejected by token 'seal'"),
            "{text}"
        );
        assert!(text.contains("FINAL TRY"), "{text}");
    }
}
