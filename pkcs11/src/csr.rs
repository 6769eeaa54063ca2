//! PKCS#10 certificate requests built with `x509-cert` and signed on the token.

use std::str::FromStr;

use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, SHA_256_WITH_RSA_ENCRYPTION};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use der::asn1::{AnyRef, BitString};
use der::{Encode, EncodePem};
use seald_signer::{HashAlgorithm, SignatureAlgorithm};
use spki::AlgorithmIdentifierOwned;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::error::{Error, Result};
use crate::key::{KeyKind, PublicKey};
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

/// The CSR signature algorithm for a key: SHA-256 with RSA, ECDSA with the curve's hash.
fn algorithm_for(kind: KeyKind) -> (SignatureAlgorithm, AlgorithmIdentifierOwned) {
    let algorithm = kind.default_algorithm();
    let oid = match algorithm {
        SignatureAlgorithm::Ecdsa {
            hash: HashAlgorithm::Sha384,
            ..
        } => ECDSA_WITH_SHA_384,
        SignatureAlgorithm::Ecdsa { .. } => ECDSA_WITH_SHA_256,
        _ => SHA_256_WITH_RSA_ENCRYPTION,
    };
    let parameters = match algorithm {
        // RFC 4055: sha256WithRSAEncryption carries NULL parameters; ECDSA ones carry none.
        SignatureAlgorithm::RsaPkcs1v15 { .. } => Some(AnyRef::NULL.into()),
        _ => None,
    };
    (algorithm, AlgorithmIdentifierOwned { oid, parameters })
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
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key: public_key.to_spki()?,
        attributes: Default::default(),
    };
    let to_be_signed = info.to_der().map_err(|e| Error::Malformed {
        what: "certificate request",
        reason: e.to_string(),
    })?;
    let (algorithm, algorithm_id) = algorithm_for(public_key.kind());
    let plan =
        mechanism::plan(algorithm, mechanisms, &MechanismSet::default()).ok_or_else(|| {
            Error::MechanismUnsupported {
                token: token.to_owned(),
                algorithm: algorithm.to_string(),
                disabled: false,
            }
        })?;
    let raw = session
        .sign(
            &mechanism::mechanism(plan, algorithm),
            handle,
            &mechanism::input(plan, algorithm, &to_be_signed),
        )
        .map_err(|e| Error::call(token, e))?;
    let signature = mechanism::output(algorithm, raw)?;
    let request = CertReq {
        info,
        algorithm: algorithm_id,
        signature: BitString::from_bytes(&signature).map_err(|e| Error::Malformed {
            what: "certificate request",
            reason: e.to_string(),
        })?,
    };
    request
        .to_pem(der::pem::LineEnding::LF)
        .map_err(|e| Error::Malformed {
            what: "certificate request",
            reason: e.to_string(),
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
