//! seald's PKCS#11 key custody.
//!
//! This crate owns everything between seald and a PKCS#11 module: loading the module
//! ([`Module`]), describing slots and tokens ([`SlotDescription`]), a per-token session pool that
//! signs concurrently and recovers by itself after the token goes away and comes back
//! ([`TokenPool`]), the [`seald_signer::Signer`] implementation for seal keys ([`PoolKey`]), and
//! the token administration an IT admin needs to prepare a UKey or HSM partition for a seal
//! ([`admin`]: init, PINs, keygen, CSR, certificate import, deletion).
//!
//! It knows nothing of PDFs or policy. Its only unsafe code is one FFI call, isolated in
//! `ffi` (the crate denies unsafe code everywhere else).

pub mod admin;
mod cert;
mod csr;
mod error;
mod ffi;
mod key;
mod login;
mod mechanism;
mod module;
mod pin;
mod pool;
mod queue;
mod slot;

pub use cert::Certificate;
pub use csr::{parse_subject, signed_request};
pub use error::{ckr_name, CallFailure, Error, PinRole, PinTries, Result};
pub use key::{Curve, KeyKind, KeySelector, PublicKey};
pub use mechanism::parse_mechanism;
pub use module::Module;
pub use pin::Pin;
pub use pool::{PoolConfig, PoolHealth, PoolKey, PoolStatus, TokenPool};
pub use slot::{PinStatus, SlotDescription, TokenDescription, TokenSelector};

pub use cryptoki::error::RvError;
pub use cryptoki::mechanism::MechanismType;
