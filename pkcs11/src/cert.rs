//! X.509 certificates: reading them from files and tokens, building a key's chain, and the
//! object template they are stored with.

use std::fmt;

use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::{Decode, Encode};

use crate::error::{Error, Result};
use crate::key::PublicKey;

/// A parsed certificate with its DER bytes.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    parsed: x509_cert::Certificate,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject())
            .field("issuer", &self.issuer())
            .finish()
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Certificate {
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let parsed = x509_cert::Certificate::from_der(der).map_err(|e| Error::Certificate {
            context: None,
            reason: e.to_string(),
        })?;
        Ok(Certificate {
            der: der.to_vec(),
            parsed,
        })
    }

    /// Reads every certificate in `bytes`: one or more PEM blocks, or a single DER certificate.
    /// `context` (a file name) goes into error messages.
    pub fn read_all(bytes: &[u8], context: &str) -> Result<Vec<Self>> {
        let with_context = |reason: String| Error::Certificate {
            context: Some(context.to_owned()),
            reason,
        };
        let text_like = bytes.iter().take(64).all(|b| b.is_ascii());
        let certs = if text_like && bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            x509_cert::Certificate::load_pem_chain(bytes)
                .map_err(|e| with_context(e.to_string()))?
        } else {
            vec![x509_cert::Certificate::from_der(bytes).map_err(|e| with_context(e.to_string()))?]
        };
        if certs.is_empty() {
            return Err(with_context("no certificate found".to_owned()));
        }
        certs
            .into_iter()
            .map(|parsed| {
                let der = parsed.to_der().map_err(|e| with_context(e.to_string()))?;
                Ok(Certificate { der, parsed })
            })
            .collect()
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn to_pem(&self) -> Result<String> {
        use der::EncodePem;
        self.parsed
            .to_pem(der::pem::LineEnding::LF)
            .map_err(|e| Error::Certificate {
                context: None,
                reason: e.to_string(),
            })
    }

    pub fn subject(&self) -> String {
        self.parsed.tbs_certificate.subject.to_string()
    }

    pub fn issuer(&self) -> String {
        self.parsed.tbs_certificate.issuer.to_string()
    }

    pub fn serial_hex(&self) -> String {
        hex::encode(self.parsed.tbs_certificate.serial_number.as_bytes())
    }

    pub fn not_after(&self) -> String {
        self.parsed
            .tbs_certificate
            .validity
            .not_after
            .to_date_time()
            .to_string()
    }

    pub fn public_key(&self) -> Result<PublicKey> {
        PublicKey::from_spki(&self.parsed.tbs_certificate.subject_public_key_info)
    }

    fn subject_der(&self) -> Result<Vec<u8>> {
        encode(&self.parsed.tbs_certificate.subject)
    }

    fn issuer_der(&self) -> Result<Vec<u8>> {
        encode(&self.parsed.tbs_certificate.issuer)
    }

    pub fn is_self_issued(&self) -> bool {
        self.parsed.tbs_certificate.subject == self.parsed.tbs_certificate.issuer
    }

    /// Whether `issuer` names this certificate's issuer (by distinguished name).
    pub fn issued_by(&self, issuer: &Certificate) -> bool {
        self.parsed.tbs_certificate.issuer == issuer.parsed.tbs_certificate.subject
    }

    /// The attributes a token object for this certificate gets (PKCS#11 X.509 certificate).
    pub(crate) fn object_template(&self, label: &str, id: &[u8]) -> Result<Vec<Attribute>> {
        Ok(vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
            Attribute::Subject(self.subject_der()?),
            Attribute::Issuer(self.issuer_der()?),
            Attribute::SerialNumber(encode(&self.parsed.tbs_certificate.serial_number)?),
            Attribute::Value(self.der.clone()),
        ])
    }
}

fn encode(value: &impl Encode) -> Result<Vec<u8>> {
    value.to_der().map_err(|e| Error::Certificate {
        context: None,
        reason: e.to_string(),
    })
}

/// Every X.509 certificate object matching `attribute` (e.g. a `CKA_ID`).
pub(crate) fn certificates_with(
    session: &Session,
    token: &str,
    attribute: Attribute,
) -> Result<Vec<Certificate>> {
    let handles = session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            attribute,
        ])
        .map_err(|e| Error::call(token, e))?;
    handles
        .into_iter()
        .map(|h| read_certificate(session, token, h))
        .collect()
}

pub(crate) fn read_certificate(
    session: &Session,
    token: &str,
    handle: ObjectHandle,
) -> Result<Certificate> {
    let attrs = session
        .get_attributes(handle, &[AttributeType::Value])
        .map_err(|e| Error::call(token, e))?;
    match attrs.into_iter().next() {
        Some(Attribute::Value(der)) => Certificate::from_der(&der),
        _ => Err(Error::Malformed {
            what: "certificate object",
            reason: "no CKA_VALUE".to_owned(),
        }),
    }
}

/// The certificate chain of a key: the certificate under the key's `CKA_ID` whose public key
/// matches, then its issuers found on the token by subject name, up to a self-issued root or
/// the first issuer the token does not hold. Returns an empty chain when the key has no
/// certificate.
pub(crate) fn chain_for_key(
    session: &Session,
    token: &str,
    id: &[u8],
    public_key: &PublicKey,
) -> Result<Vec<Certificate>> {
    let candidates = certificates_with(session, token, Attribute::Id(id.to_vec()))?;
    let mut leaf = None;
    for cert in candidates {
        if cert.public_key().ok().as_ref() == Some(public_key) {
            leaf = Some(cert);
            break;
        }
    }
    let Some(leaf) = leaf else {
        return Ok(Vec::new());
    };
    let mut chain = vec![leaf];
    // Bounded: a chain longer than this is a loop or garbage.
    while chain.len() < 8 {
        let last = &chain[chain.len() - 1];
        if last.is_self_issued() {
            break;
        }
        let issuers = certificates_with(session, token, Attribute::Subject(last.issuer_der()?))?;
        match issuers
            .into_iter()
            .find(|c| last.issued_by(c) && !chain.contains(c))
        {
            Some(issuer) => chain.push(issuer),
            None => break,
        }
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_certificate_error_naming_the_file() {
        let err = Certificate::read_all(b"not a certificate", "leaf.pem").expect_err("garbage");
        assert!(err.to_string().contains("leaf.pem"), "{err}");
        let err = Certificate::read_all(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "x.pem",
        )
        .expect_err("bad pem");
        assert!(matches!(err, Error::Certificate { .. }));
    }
}
