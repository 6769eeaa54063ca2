//! Logging in, and the precise errors of a rejected, locked or refused PIN.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use crate::error::{CallFailure, Error, PinRole, PinTries, Result};
use crate::module::Access;
use crate::pin::Pin;
use crate::slot::TokenDescription;

/// Logs `role` in on `session`; already being logged in is fine (login is per token).
pub(crate) fn login(
    session: &Session,
    access: &Access,
    slot: Slot,
    token: &str,
    role: PinRole,
    pin: &Pin,
) -> Result<()> {
    let user_type = match role {
        PinRole::User => UserType::User,
        PinRole::So => UserType::So,
    };
    match session.login(user_type, Some(&pin.to_auth_pin())) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e @ CkError::Pkcs11(rv, _))
            if !matches!(
                rv,
                RvError::PinIncorrect
                    | RvError::PinLocked
                    | RvError::UserPinNotInitialized
                    | RvError::PinLenRange
                    | RvError::PinInvalid
                    | RvError::PinExpired
            ) =>
        {
            Err(match crate::error::call_failure(&e) {
                Some(failure) => Error::LoginFailed {
                    token: token.to_owned(),
                    role,
                    failure,
                },
                None => Error::call(token, e),
            })
        }
        Err(e) => Err(pin_error(access, slot, token, role, e)),
    }
}

/// Turns a failed login or PIN change into the precise error (with the token's try flags).
pub(crate) fn pin_error(
    access: &Access,
    slot: Slot,
    token: &str,
    role: PinRole,
    err: CkError,
) -> Error {
    let info = access
        .token_info(slot)
        .ok()
        .map(|t| TokenDescription::from_raw(&t));
    match err {
        CkError::Pkcs11(RvError::PinIncorrect, _) => Error::PinIncorrect {
            token: token.to_owned(),
            role,
            tries: info
                .as_ref()
                .map(|t| {
                    let status = match role {
                        PinRole::User => t.user_pin,
                        PinRole::So => t.so_pin,
                    };
                    PinTries {
                        count_low: status.count_low,
                        final_try: status.final_try,
                        now_locked: status.locked,
                    }
                })
                .unwrap_or_default(),
        },
        CkError::Pkcs11(RvError::PinLocked, _) => Error::PinLocked {
            token: token.to_owned(),
            role,
        },
        CkError::Pkcs11(RvError::UserPinNotInitialized, _) => Error::UserPinNotInitialized {
            token: token.to_owned(),
        },
        CkError::Pkcs11(RvError::PinLenRange, _) => Error::PinLength {
            token: token.to_owned(),
            role,
            min: info.as_ref().map(|t| t.pin_min_len).unwrap_or(0),
            max: info.as_ref().map(|t| t.pin_max_len).unwrap_or(0),
        },
        CkError::Pkcs11(rv @ (RvError::PinInvalid | RvError::PinExpired), function) => {
            Error::PinRefused {
                token: token.to_owned(),
                role,
                failure: CallFailure {
                    rv,
                    function: if matches!(function, cryptoki::context::Function::Login) {
                        "C_Login"
                    } else {
                        "C_SetPIN"
                    },
                },
            }
        }
        other => Error::call(token, other),
    }
}
