//! PKCS#10 certificate requests built with `x509-cert`, signed on the token (or, through
//! [`signed_request`], by any key store that can sign: sealctl's serial devices).

use std::str::FromStr;

use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512, SHA_256_WITH_RSA_ENCRYPTION,
};
use const_oid::db::rfc8410::ID_ED_25519;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use der::asn1::{AnyRef, BitString};
use der::{Encode, EncodePem};
use seald_signer::{HashAlgorithm, SignatureAlgorithm};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::error::{Error, Result};
use crate::key::PublicKey;
use crate::mechanism::{self, MechanismSet};

/// Parses an RFC 4514 subject such as `CN=Contract Seal,O=Example Co,C=CN`.
pub fn parse_subject(subject: &str) -> Result<Name> {
    let invalid = |reason: String| Error::InvalidSubject {
        subject: subject.to_owned(),
        reason,
    };
    if subject.trim().is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    let name = Name::from_str(subject).map_err(|e| invalid(e.to_string()))?;
    if name.0.is_empty() {
        return Err(invalid("it names no attribute".to_owned()));
    }
    Ok(name)
}

/// The CSR signature algorithm identifier: SHA-256 with RSA, ECDSA with its hash, Ed25519.
fn algorithm_id(algorithm: SignatureAlgorithm) -> AlgorithmIdentifierOwned {
    let oid = match algorithm {
        SignatureAlgorithm::Ecdsa {
            hash: HashAlgorithm::Sha384,
            ..
        } => ECDSA_WITH_SHA_384,
        SignatureAlgorithm::Ecdsa {
            hash: HashAlgorithm::Sha512,
            ..
        } => ECDSA_WITH_SHA_512,
        SignatureAlgorithm::Ecdsa { .. } => ECDSA_WITH_SHA_256,
        SignatureAlgorithm::Ed25519 => ID_ED_25519,
        _ => SHA_256_WITH_RSA_ENCRYPTION,
    };
    let parameters = match algorithm {
        // RFC 4055: sha256WithRSAEncryption carries NULL parameters; ECDSA and Ed25519 none.
        SignatureAlgorithm::RsaPkcs1v15 { .. } => Some(AnyRef::NULL.into()),
        _ => None,
    };
    AlgorithmIdentifierOwned { oid, parameters }
}

fn malformed(e: der::Error) -> Error {
    Error::Malformed {
        what: "certificate request",
        reason: e.to_string(),
    }
}

/// A PKCS#10 request for `public_key` named `subject`, signed with `algorithm` by `sign`, which
/// gets the DER to be signed and returns the signature as CMS carries it (raw for RSA and
/// Ed25519, DER for ECDSA). Returns the PEM text.
pub fn signed_request<E: From<Error>>(
    subject: Name,
    public_key: SubjectPublicKeyInfoOwned,
    algorithm: SignatureAlgorithm,
    sign: impl FnOnce(&[u8]) -> std::result::Result<Vec<u8>, E>,
) -> std::result::Result<String, E> {
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key,
        attributes: Default::default(),
    };
    let to_be_signed = info.to_der().map_err(malformed)?;
    let signature = sign(&to_be_signed)?;
    let request = CertReq {
        info,
        algorithm: algorithm_id(algorithm),
        signature: BitString::from_bytes(&signature).map_err(malformed)?,
    };
    Ok(request
        .to_pem(der::pem::LineEnding::LF)
        .map_err(malformed)?)
}

/// Builds a CSR for `public_key` with `subject` and signs it with the private key `handle`.
/// Returns the PEM text.
pub(crate) fn build(
    session: &Session,
    token: &str,
    handle: ObjectHandle,
    public_key: &PublicKey,
    subject: Name,
    mechanisms: &MechanismSet,
) -> Result<String> {
    let algorithm = public_key.kind().default_algorithm();
    let plan =
        mechanism::plan(algorithm, mechanisms, &MechanismSet::default()).ok_or_else(|| {
            Error::MechanismUnsupported {
                token: token.to_owned(),
                algorithm: algorithm.to_string(),
                disabled: false,
            }
        })?;
    signed_request(subject, public_key.to_spki()?, algorithm, |to_be_signed| {
        let raw = session
            .sign(
                &mechanism::mechanism(plan, algorithm),
                handle,
                &mechanism::input(plan, algorithm, to_be_signed),
            )
            .map_err(|e| Error::call(token, e))?;
        mechanism::output(algorithm, raw)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_in_rfc4514_order_with_utf8_names() {
        let name = parse_subject("CN=合同专用章,O=示例科技有限公司,C=CN").expect("subject");
        // RFC 4514 lists the most specific RDN first; DER stores it last.
        assert_eq!(name.0.len(), 3);
        assert_eq!(name.to_string(), "CN=合同专用章,O=示例科技有限公司,C=CN");
        assert!(parse_subject("").is_err());
        assert!(matches!(
            parse_subject("NOPE=x"),
            Err(Error::InvalidSubject { .. })
        ));
    }
}
