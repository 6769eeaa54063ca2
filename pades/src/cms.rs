//! The CAdES signature: a detached CMS SignedData with content-type, message-digest and ESS
//! signing-certificate-v2 signed attributes (no signing-time: PAdES puts the time in /M), the
//! signer's certificate chain, and optionally an RFC 3161 signature time-stamp.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::signed_data::{
    EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence};
use seald_signer::{HashAlgorithm, SignatureAlgorithm, Signer};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use crate::error::{Error, Result};

pub(crate) const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub(crate) const ID_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
pub(crate) const ID_CONTENT_TYPE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
pub(crate) const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
pub(crate) const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
pub(crate) const ID_TIMESTAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
pub(crate) const ID_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub(crate) const ID_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub(crate) const ID_SHA512: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
pub(crate) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const ID_RSASSA_PSS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
pub(crate) const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
pub(crate) const SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const SHA384_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
pub(crate) const SHA512_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
pub(crate) const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
pub(crate) const ECDSA_WITH_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
pub(crate) const ECDSA_WITH_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
pub(crate) const ECDSA_WITH_SHA512: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");

/// A hash being computed, of one of the algorithms seald signs with.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn new(alg: HashAlgorithm) -> Self {
        match alg {
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

pub(crate) fn digest(alg: HashAlgorithm, data: &[u8]) -> Vec<u8> {
    let mut h = Hasher::new(alg);
    h.update(data);
    h.finish()
}

pub(crate) fn hash_oid(alg: HashAlgorithm) -> ObjectIdentifier {
    match alg {
        HashAlgorithm::Sha256 => ID_SHA256,
        HashAlgorithm::Sha384 => ID_SHA384,
        HashAlgorithm::Sha512 => ID_SHA512,
    }
}

pub(crate) fn hash_from_oid(oid: &ObjectIdentifier) -> Option<HashAlgorithm> {
    match *oid {
        ID_SHA256 => Some(HashAlgorithm::Sha256),
        ID_SHA384 => Some(HashAlgorithm::Sha384),
        ID_SHA512 => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

/// A hash AlgorithmIdentifier (parameters absent, as RFC 5754 prefers).
pub(crate) fn hash_algorithm(alg: HashAlgorithm) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: hash_oid(alg),
        parameters: None,
    }
}

#[derive(Sequence)]
struct PssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    hash: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT")]
    mask_gen: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT")]
    salt_length: u32,
}

fn encoding(e: der::Error) -> Error {
    Error::Encoding(e.to_string())
}

/// The SignerInfo signatureAlgorithm for a signer's algorithm.
pub(crate) fn signature_algorithm(alg: SignatureAlgorithm) -> Result<AlgorithmIdentifierOwned> {
    Ok(match alg {
        // rsaEncryption, as RFC 3370 recommends for SignerInfo; every validator accepts it.
        SignatureAlgorithm::RsaPkcs1v15 { .. } => AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        SignatureAlgorithm::RsaPss { hash } => {
            let params = PssParams {
                hash: hash_algorithm(hash),
                mask_gen: AlgorithmIdentifierOwned {
                    oid: ID_MGF1,
                    parameters: Some(Any::encode_from(&hash_algorithm(hash)).map_err(encoding)?),
                },
                salt_length: hash.output_len() as u32,
            };
            AlgorithmIdentifierOwned {
                oid: ID_RSASSA_PSS,
                parameters: Some(Any::encode_from(&params).map_err(encoding)?),
            }
        }
        SignatureAlgorithm::Ecdsa { hash, .. } => AlgorithmIdentifierOwned {
            oid: match hash {
                HashAlgorithm::Sha256 => ECDSA_WITH_SHA256,
                HashAlgorithm::Sha384 => ECDSA_WITH_SHA384,
                HashAlgorithm::Sha512 => ECDSA_WITH_SHA512,
            },
            parameters: None,
        },
        // RFC 8419: id-Ed25519, parameters absent.
        SignatureAlgorithm::Ed25519 => AlgorithmIdentifierOwned {
            oid: ID_ED25519,
            parameters: None,
        },
    })
}

/// ESS `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2 }`.
#[derive(Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

/// `ESSCertIDv2`; the hash algorithm is omitted because SHA-256 is its DER default.
#[derive(Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

#[derive(Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(encoding)?;
    Ok(Attribute { oid, values })
}

/// The signer's own certificate, parsed.
pub(crate) fn signer_certificate(signer: &dyn Signer) -> Result<Certificate> {
    let der = signer.certificate_chain().first().ok_or_else(|| {
        Error::Certificate(
            "the signer has no certificate (import one onto the token, or pass the chain)"
                .to_owned(),
        )
    })?;
    // A seal signs with the same certificate thousands of times: keep the last one parsed.
    static LAST: std::sync::Mutex<Option<(Vec<u8>, Certificate)>> = std::sync::Mutex::new(None);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((cached, cert)) = last.as_ref() {
        if cached == der {
            return Ok(cert.clone());
        }
    }
    let cert = Certificate::from_der(der).map_err(|e| Error::Certificate(e.to_string()))?;
    *last = Some((der.clone(), cert.clone()));
    Ok(cert)
}

/// The signed attributes for a document digest, as a DER `SET OF Attribute` (what is signed).
pub(crate) fn signed_attributes(
    document_digest: &[u8],
    certificate: &Certificate,
    certificate_der: &[u8],
) -> Result<SetOfVec<Attribute>> {
    let ess = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            cert_hash: OctetString::new(digest(HashAlgorithm::Sha256, certificate_der))
                .map_err(encoding)?,
            issuer_serial: IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(
                    certificate.tbs_certificate.issuer.clone(),
                )],
                serial_number: certificate.tbs_certificate.serial_number.clone(),
            },
        }],
    };
    let mut attrs = SetOfVec::new();
    attrs
        .insert(attribute(
            ID_CONTENT_TYPE,
            Any::encode_from(&ID_DATA).map_err(encoding)?,
        )?)
        .map_err(encoding)?;
    attrs
        .insert(attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(document_digest.to_vec()).map_err(encoding)?)
                .map_err(encoding)?,
        )?)
        .map_err(encoding)?;
    attrs
        .insert(attribute(
            ID_SIGNING_CERTIFICATE_V2,
            Any::encode_from(&ess).map_err(encoding)?,
        )?)
        .map_err(encoding)?;
    Ok(attrs)
}

/// The DER ContentInfo holding the SignedData.
pub(crate) fn content_info(
    signer: &dyn Signer,
    certificate: &Certificate,
    signed_attrs: SetOfVec<Attribute>,
    signature: Vec<u8>,
    timestamp_token: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let algorithm = signer.algorithm();
    let hash = algorithm.hash();
    let unsigned_attrs = match timestamp_token {
        None => None,
        Some(token) => {
            let mut attrs = SetOfVec::new();
            attrs
                .insert(attribute(
                    ID_TIMESTAMP_TOKEN,
                    Any::from_der(token).map_err(encoding)?,
                )?)
                .map_err(encoding)?;
            Some(attrs)
        }
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: certificate.tbs_certificate.issuer.clone(),
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: hash_algorithm(hash),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: signature_algorithm(algorithm)?,
        signature: OctetString::new(signature).map_err(encoding)?,
        unsigned_attrs,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms
        .insert(hash_algorithm(hash))
        .map_err(encoding)?;
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        // Spliced in below as raw DER: parsing and re-encoding every certificate of the chain
        // for every signature would cost more than all the rest of the CMS.
        certificates: None,
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info]).map_err(encoding)?,
    };
    let without_certs = signed_data.to_der().map_err(encoding)?;
    let signed_data = splice_certificates(&without_certs, signer.certificate_chain())?;
    let mut content_info = Vec::with_capacity(signed_data.len() + 32);
    let oid = ID_SIGNED_DATA.to_der().map_err(encoding)?;
    let explicit = tlv_bytes(0xa0, &signed_data);
    content_info.extend_from_slice(&oid);
    content_info.extend_from_slice(&explicit);
    Ok(tlv_bytes(0x30, &content_info))
}

/// Inserts `[0] IMPLICIT SET OF Certificate` (the chain, DER-sorted as a SET must be) into a
/// SignedData encoded without certificates, before its signerInfos.
fn splice_certificates(signed_data: &[u8], chain: &[Vec<u8>]) -> Result<Vec<u8>> {
    let bad = || Error::Encoding("unexpected SignedData layout".to_owned());
    let outer = crate::tlv::read(signed_data).ok_or_else(bad)?;
    let fields = crate::tlv::children(outer.value).ok_or_else(bad)?;
    if fields.len() != 4 {
        return Err(bad());
    }
    let mut certs: Vec<&[u8]> = Vec::with_capacity(chain.len());
    for der in chain {
        // Each must be one well-formed certificate TLV.
        let cert = crate::tlv::read(der)
            .filter(|t| t.tag == 0x30 && t.raw.len() == der.len())
            .ok_or_else(|| Error::Certificate("a chain certificate is not DER".to_owned()))?;
        certs.push(cert.raw);
    }
    certs.sort();
    certs.dedup();
    let set = tlv_bytes(0xa0, &certs.concat());
    let mut body = Vec::with_capacity(outer.value.len() + set.len());
    for f in &fields[..3] {
        body.extend_from_slice(f.raw);
    }
    body.extend_from_slice(&set);
    body.extend_from_slice(fields[3].raw);
    Ok(tlv_bytes(0x30, &body))
}

/// A DER TLV with a definite length.
fn tlv_bytes(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_short_and_long_forms() {
        assert_eq!(tlv_bytes(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv_bytes(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }
}
