//! The `Signer` seam.
//!
//! Every seal key backend (PKCS#11 tokens in `seald-pkcs11`, serial devices in
//! `seald-firmware-bridge`) implements [`Signer`]; the signature formats (`seald-pades`) consume
//! it. This crate is deliberately tiny and has no dependencies, so both sides can see it without
//! seeing each other.

use std::error::Error as StdError;
use std::fmt;

/// A hash function used by a signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// Length of the digest in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// Name as used on the command line and in configuration (`sha256`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }
}

/// A named elliptic curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    P256,
    P384,
}

impl EcCurve {
    /// Length of one coordinate (and of `r`, `s`) in bytes.
    pub fn field_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    /// The hash that matches the curve's strength, used when none is asked for.
    pub fn default_hash(self) -> HashAlgorithm {
        match self {
            Self::P256 => HashAlgorithm::Sha256,
            Self::P384 => HashAlgorithm::Sha384,
        }
    }
}

/// What a [`Signer`] produces: the algorithm a verifier must use on its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5 over the message hashed with `hash`.
    RsaPkcs1v15 { hash: HashAlgorithm },
    /// RSASSA-PSS with `hash`, MGF1 with the same hash, salt length = hash length.
    RsaPss { hash: HashAlgorithm },
    /// ECDSA on `curve` over the message hashed with `hash`; the signature is DER
    /// (`SEQUENCE { r INTEGER, s INTEGER }`), as CMS and X.509 carry it.
    Ecdsa { curve: EcCurve, hash: HashAlgorithm },
    /// Ed25519 (RFC 8032, pure): the message itself is signed, the signature is 64 raw bytes.
    /// CMS digests the content with SHA-512 for it (RFC 8419).
    Ed25519,
}

impl SignatureAlgorithm {
    /// The hash applied to the message (for Ed25519, which signs the message itself, the
    /// digest CMS uses with it).
    pub fn hash(self) -> HashAlgorithm {
        match self {
            Self::RsaPkcs1v15 { hash } | Self::RsaPss { hash } | Self::Ecdsa { hash, .. } => hash,
            Self::Ed25519 => HashAlgorithm::Sha512,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RsaPkcs1v15 { hash } => write!(f, "RSA PKCS#1 v1.5 with {}", hash.name()),
            Self::RsaPss { hash } => write!(f, "RSA-PSS with {}", hash.name()),
            Self::Ecdsa { curve, hash } => write!(f, "ECDSA {curve:?} with {}", hash.name()),
            Self::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// Why a signature could not be made, as far as a caller needs to decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignErrorKind {
    /// The key store is temporarily unavailable (token removed, HSM restarting, device absent);
    /// retrying later may succeed. Maps to HTTP 503.
    Unavailable,
    /// Every session or device is busy and none became free in time. Maps to HTTP 503.
    Busy,
    /// The key store signs only once a person is present (touches the device), and nobody
    /// was; asking again with someone there may succeed. Maps to HTTP 503.
    NoUserPresence,
    /// The key cannot be used as configured (missing, wrong type, PIN rejected or locked);
    /// an operator must act.
    Misconfigured,
    /// The backend failed for another reason.
    Failed,
}

/// The error a [`Signer`] returns: a coarse kind for callers plus the backend's precise error.
#[derive(Debug)]
pub struct SignError {
    kind: SignErrorKind,
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl SignError {
    pub fn new(kind: SignErrorKind, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    pub fn kind(&self) -> SignErrorKind {
        self.kind
    }

    /// The backend's own error, for callers that know the backend.
    pub fn backend_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl StdError for SignError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// A seal key able to sign, with its certificate chain.
///
/// `sign` blocks (a token or device does the work): async callers run it on a blocking thread.
pub trait Signer: Send + Sync {
    /// The algorithm the output of [`Signer::sign`] is to be verified with.
    fn algorithm(&self) -> SignatureAlgorithm;

    /// DER certificates: the signer's own first, then its issuers towards the root.
    fn certificate_chain(&self) -> &[Vec<u8>];

    /// Signs `message` (hashing it as [`Signer::algorithm`] says; Ed25519 signs it as it is)
    /// and returns the signature in the encoding CMS carries (raw for RSA and Ed25519, DER for
    /// ECDSA).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_error_keeps_the_backend_cause() {
        let io = std::io::Error::other("token went away");
        let err = SignError::new(SignErrorKind::Unavailable, io);
        assert_eq!(err.kind(), SignErrorKind::Unavailable);
        assert_eq!(err.to_string(), "token went away");
        assert!(err
            .backend_error()
            .downcast_ref::<std::io::Error>()
            .is_some());
    }

    #[test]
    fn algorithm_reports_its_hash() {
        let alg = SignatureAlgorithm::Ecdsa {
            curve: EcCurve::P384,
            hash: EcCurve::P384.default_hash(),
        };
        assert_eq!(alg.hash(), HashAlgorithm::Sha384);
        assert_eq!(alg.hash().output_len(), 48);
    }
}
