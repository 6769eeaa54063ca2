//! Choosing a PKCS#11 mechanism for a signature algorithm, and the work done in process when
//! the token only offers the raw mechanism (hashing, DigestInfo, r‖s → DER).

use std::collections::HashSet;

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use der::asn1::UintRef;
use der::{Encode, Sequence};
use seald_signer::{HashAlgorithm, SignatureAlgorithm};
use sha2::Digest;

use crate::error::{Error, Result};

/// Every mechanism seald may sign with, for naming them in configuration.
const SIGNING_MECHANISMS: &[MechanismType] = &[
    MechanismType::RSA_PKCS,
    MechanismType::SHA256_RSA_PKCS,
    MechanismType::SHA384_RSA_PKCS,
    MechanismType::SHA512_RSA_PKCS,
    MechanismType::RSA_PKCS_PSS,
    MechanismType::SHA256_RSA_PKCS_PSS,
    MechanismType::SHA384_RSA_PKCS_PSS,
    MechanismType::SHA512_RSA_PKCS_PSS,
    MechanismType::ECDSA,
    MechanismType::ECDSA_SHA256,
    MechanismType::ECDSA_SHA384,
    MechanismType::ECDSA_SHA512,
];

/// Parses a mechanism name such as `CKM_SHA256_RSA_PKCS` (for a configured deny list).
pub fn parse_mechanism(name: &str) -> Result<MechanismType> {
    SIGNING_MECHANISMS
        .iter()
        .find(|m| m.to_string().eq_ignore_ascii_case(name.trim()))
        .copied()
        .ok_or_else(|| Error::UnknownMechanism(name.to_owned()))
}

/// A set of mechanisms (cryptoki's `MechanismType` is not `Hash`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MechanismSet(HashSet<std::os::raw::c_ulong>);

impl MechanismSet {
    pub(crate) fn contains(&self, mechanism: MechanismType) -> bool {
        self.0.contains(&*mechanism)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<MechanismType> for MechanismSet {
    fn from_iter<I: IntoIterator<Item = MechanismType>>(iter: I) -> Self {
        MechanismSet(iter.into_iter().map(|m| *m).collect())
    }
}

/// How one signature is made on a given token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub mechanism: MechanismType,
    /// Whether seald hashes the message first (the mechanism is the raw one).
    pub prehash: bool,
}

fn combined(algorithm: SignatureAlgorithm) -> MechanismType {
    use HashAlgorithm::*;
    match algorithm {
        SignatureAlgorithm::RsaPkcs1v15 { hash } => match hash {
            Sha256 => MechanismType::SHA256_RSA_PKCS,
            Sha384 => MechanismType::SHA384_RSA_PKCS,
            Sha512 => MechanismType::SHA512_RSA_PKCS,
        },
        SignatureAlgorithm::RsaPss { hash } => match hash {
            Sha256 => MechanismType::SHA256_RSA_PKCS_PSS,
            Sha384 => MechanismType::SHA384_RSA_PKCS_PSS,
            Sha512 => MechanismType::SHA512_RSA_PKCS_PSS,
        },
        SignatureAlgorithm::Ecdsa { hash, .. } => match hash {
            Sha256 => MechanismType::ECDSA_SHA256,
            Sha384 => MechanismType::ECDSA_SHA384,
            Sha512 => MechanismType::ECDSA_SHA512,
        },
        // Pure EdDSA has no hash of its own to move off the token.
        SignatureAlgorithm::Ed25519 => MechanismType::EDDSA,
    }
}

fn raw(algorithm: SignatureAlgorithm) -> MechanismType {
    match algorithm {
        SignatureAlgorithm::RsaPkcs1v15 { .. } => MechanismType::RSA_PKCS,
        SignatureAlgorithm::RsaPss { .. } => MechanismType::RSA_PKCS_PSS,
        SignatureAlgorithm::Ecdsa { .. } => MechanismType::ECDSA,
        SignatureAlgorithm::Ed25519 => MechanismType::EDDSA,
    }
}

/// Prefers the mechanism that hashes on the token; falls back to the raw one with hashing in
/// process (SoftHSM2 offers only raw `CKM_ECDSA`; many UKeys only `CKM_RSA_PKCS`).
pub(crate) fn plan(
    algorithm: SignatureAlgorithm,
    available: &MechanismSet,
    disabled: &MechanismSet,
) -> Option<Plan> {
    if algorithm == SignatureAlgorithm::Ed25519 {
        // Token keys are RSA or EC here (seald-pkcs11 makes no EdDSA keys); Ed25519 seals live
        // on serial devices.
        return None;
    }
    let usable = |m: &MechanismType| available.contains(*m) && !disabled.contains(*m);
    let with_hash = combined(algorithm);
    if usable(&with_hash) {
        return Some(Plan {
            mechanism: with_hash,
            prehash: false,
        });
    }
    let raw = raw(algorithm);
    usable(&raw).then_some(Plan {
        mechanism: raw,
        prehash: true,
    })
}

fn hash_mechanism(hash: HashAlgorithm) -> (MechanismType, PkcsMgfType) {
    match hash {
        HashAlgorithm::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        HashAlgorithm::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        HashAlgorithm::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
    }
}

/// The cryptoki mechanism (with PSS parameters: MGF1 with the same hash, salt = hash length).
pub(crate) fn mechanism(plan: Plan, algorithm: SignatureAlgorithm) -> Mechanism<'static> {
    let hash = algorithm.hash();
    let (hash_alg, mgf) = hash_mechanism(hash);
    let pss = PkcsPssParams {
        hash_alg,
        mgf,
        s_len: (hash.output_len() as u64).into(),
    };
    match plan.mechanism {
        m if m == MechanismType::RSA_PKCS => Mechanism::RsaPkcs,
        m if m == MechanismType::SHA256_RSA_PKCS => Mechanism::Sha256RsaPkcs,
        m if m == MechanismType::SHA384_RSA_PKCS => Mechanism::Sha384RsaPkcs,
        m if m == MechanismType::SHA512_RSA_PKCS => Mechanism::Sha512RsaPkcs,
        m if m == MechanismType::RSA_PKCS_PSS => Mechanism::RsaPkcsPss(pss),
        m if m == MechanismType::SHA256_RSA_PKCS_PSS => Mechanism::Sha256RsaPkcsPss(pss),
        m if m == MechanismType::SHA384_RSA_PKCS_PSS => Mechanism::Sha384RsaPkcsPss(pss),
        m if m == MechanismType::SHA512_RSA_PKCS_PSS => Mechanism::Sha512RsaPkcsPss(pss),
        m if m == MechanismType::ECDSA_SHA256 => Mechanism::EcdsaSha256,
        m if m == MechanismType::ECDSA_SHA384 => Mechanism::EcdsaSha384,
        m if m == MechanismType::ECDSA_SHA512 => Mechanism::EcdsaSha512,
        _ => Mechanism::Ecdsa,
    }
}

pub(crate) fn digest(hash: HashAlgorithm, message: &[u8]) -> Vec<u8> {
    match hash {
        HashAlgorithm::Sha256 => sha2::Sha256::digest(message).to_vec(),
        HashAlgorithm::Sha384 => sha2::Sha384::digest(message).to_vec(),
        HashAlgorithm::Sha512 => sha2::Sha512::digest(message).to_vec(),
    }
}

/// DER `DigestInfo` prefixes (RFC 8017 §9.2 note 1).
fn digest_info_prefix(hash: HashAlgorithm) -> &'static [u8] {
    match hash {
        HashAlgorithm::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlgorithm::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlgorithm::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// The bytes handed to `C_Sign`.
pub(crate) fn input(plan: Plan, algorithm: SignatureAlgorithm, message: &[u8]) -> Vec<u8> {
    if !plan.prehash {
        return message.to_vec();
    }
    let hash = algorithm.hash();
    let digest = digest(hash, message);
    match algorithm {
        SignatureAlgorithm::RsaPkcs1v15 { .. } => [digest_info_prefix(hash), &digest].concat(),
        SignatureAlgorithm::RsaPss { .. } | SignatureAlgorithm::Ecdsa { .. } => digest,
        // Never prehashed (its raw mechanism is the combined one): signed as it is.
        SignatureAlgorithm::Ed25519 => message.to_vec(),
    }
}

#[derive(Sequence)]
struct EcdsaSignature<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Turns the token's output into what CMS carries: PKCS#11 returns ECDSA as raw r‖s; CMS and
/// X.509 want `SEQUENCE { r INTEGER, s INTEGER }`.
pub(crate) fn output(algorithm: SignatureAlgorithm, signature: Vec<u8>) -> Result<Vec<u8>> {
    let SignatureAlgorithm::Ecdsa { curve, .. } = algorithm else {
        return Ok(signature);
    };
    let n = curve.field_len();
    if signature.len() != 2 * n {
        return Err(Error::Malformed {
            what: "ECDSA signature",
            reason: format!("{} bytes where r‖s should be {}", signature.len(), 2 * n),
        });
    }
    let malformed = |e: der::Error| Error::Malformed {
        what: "ECDSA signature",
        reason: e.to_string(),
    };
    let (r, s) = signature.split_at(n);
    EcdsaSignature {
        r: UintRef::new(r).map_err(malformed)?,
        s: UintRef::new(s).map_err(malformed)?,
    }
    .to_der()
    .map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use seald_signer::EcCurve;

    fn set(ms: &[MechanismType]) -> MechanismSet {
        ms.iter().copied().collect()
    }

    #[test]
    fn combined_mechanisms_are_preferred_and_raw_ones_are_the_fallback() {
        let alg = SignatureAlgorithm::RsaPkcs1v15 {
            hash: HashAlgorithm::Sha256,
        };
        let both = set(&[MechanismType::RSA_PKCS, MechanismType::SHA256_RSA_PKCS]);
        let p = plan(alg, &both, &MechanismSet::default()).expect("plan");
        assert_eq!(
            (p.mechanism, p.prehash),
            (MechanismType::SHA256_RSA_PKCS, false)
        );
        let p = plan(alg, &both, &set(&[MechanismType::SHA256_RSA_PKCS])).expect("plan");
        assert_eq!((p.mechanism, p.prehash), (MechanismType::RSA_PKCS, true));
        assert!(plan(alg, &set(&[MechanismType::ECDSA]), &MechanismSet::default()).is_none());
    }

    #[test]
    fn raw_rsa_input_is_a_digest_info() {
        let alg = SignatureAlgorithm::RsaPkcs1v15 {
            hash: HashAlgorithm::Sha256,
        };
        let plan = Plan {
            mechanism: MechanismType::RSA_PKCS,
            prehash: true,
        };
        let input = input(plan, alg, b"abc");
        assert_eq!(input.len(), 19 + 32);
        // SHA-256("abc") starts ba7816bf.
        assert_eq!(&input[19..23], &[0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn raw_ecdsa_becomes_der_with_minimal_integers() {
        let alg = SignatureAlgorithm::Ecdsa {
            curve: EcCurve::P256,
            hash: HashAlgorithm::Sha256,
        };
        let mut raw = vec![0u8; 64];
        raw[31] = 5; // r = 5
        raw[32] = 0x80; // s has its top bit set: needs a leading zero in DER
        let der = output(alg, raw).expect("der");
        assert_eq!(&der[..5], &[0x30, 3 + 2 + 33, 0x02, 0x01, 0x05]);
        assert_eq!(&der[5..8], &[0x02, 33, 0x00]);
        assert!(output(alg, vec![0u8; 63]).is_err());
    }

    #[test]
    fn mechanism_names_parse() {
        assert_eq!(
            parse_mechanism("CKM_SHA256_RSA_PKCS").expect("known"),
            MechanismType::SHA256_RSA_PKCS
        );
        assert!(matches!(
            parse_mechanism("CKM_MD5"),
            Err(Error::UnknownMechanism(_))
        ));
    }
}
