//! Checking signatures and certificate chains (for verification and for time-stamp
//! responses): RSA PKCS#1 v1.5, RSA-PSS, ECDSA on P-256/P-384, and Ed25519.

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use seald_signer::HashAlgorithm;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;

use crate::cms::{
    digest, hash_from_oid, ECDSA_WITH_SHA256, ECDSA_WITH_SHA384, ECDSA_WITH_SHA512, ID_ED25519,
    ID_RSASSA_PSS, RSA_ENCRYPTION, SHA256_WITH_RSA, SHA384_WITH_RSA, SHA512_WITH_RSA,
};
use crate::tlv;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");

/// The hash a signature algorithm implies (`hint` for bare rsaEncryption, which takes the
/// SignerInfo's digest algorithm).
fn signature_hash(
    alg: &AlgorithmIdentifierOwned,
    hint: Option<HashAlgorithm>,
) -> Result<HashAlgorithm, String> {
    Ok(match alg.oid {
        SHA256_WITH_RSA | ECDSA_WITH_SHA256 => HashAlgorithm::Sha256,
        SHA384_WITH_RSA | ECDSA_WITH_SHA384 => HashAlgorithm::Sha384,
        SHA512_WITH_RSA | ECDSA_WITH_SHA512 => HashAlgorithm::Sha512,
        RSA_ENCRYPTION => hint.ok_or("rsaEncryption without a digest algorithm")?,
        ID_RSASSA_PSS => pss_params(alg)?.0,
        SHA1_WITH_RSA => return Err("SHA-1 signatures are not accepted".to_owned()),
        other => return Err(format!("unsupported signature algorithm {other}")),
    })
}

/// (hash, salt length) of RSASSA-PSS parameters.
fn pss_params(alg: &AlgorithmIdentifierOwned) -> Result<(HashAlgorithm, usize), String> {
    let params = alg
        .parameters
        .as_ref()
        .ok_or("RSASSA-PSS without parameters")?
        .to_der()
        .map_err(|e| e.to_string())?;
    let seq = tlv::read(&params).ok_or("bad RSASSA-PSS parameters")?;
    let mut hash = HashAlgorithm::Sha256;
    let mut salt = None;
    let mut hash_given = false;
    for field in tlv::children(seq.value).ok_or("bad RSASSA-PSS parameters")? {
        match field.tag {
            0xa0 => {
                let id =
                    AlgorithmIdentifierOwned::from_der(field.value).map_err(|e| e.to_string())?;
                hash = hash_from_oid(&id.oid).ok_or("unsupported PSS hash")?;
                hash_given = true;
            }
            0xa2 => {
                let int = tlv::read(field.value).ok_or("bad PSS salt length")?;
                salt = Some(int.value.iter().fold(0usize, |a, b| (a << 8) | *b as usize));
            }
            _ => {}
        }
    }
    if !hash_given {
        return Err("RSASSA-PSS with SHA-1 is not accepted".to_owned());
    }
    Ok((hash, salt.unwrap_or(20)))
}

/// Checks `signature` over `message` with the key in `spki`.
pub(crate) fn verify(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    hint: Option<HashAlgorithm>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    if alg.oid == ID_ED25519 {
        // Pure Ed25519 signs the message itself, not a hash of it. RFC 8410: no parameters;
        // RFC 8419: in CMS, with SHA-512 as the digest algorithm.
        if spki.algorithm.oid != ID_ED25519 {
            return Err("an Ed25519 signature from a key that is not Ed25519".to_owned());
        }
        if alg.parameters.is_some() {
            return Err("id-Ed25519 with parameters".to_owned());
        }
        if hint.is_some_and(|h| h != HashAlgorithm::Sha512) {
            return Err("an Ed25519 signer whose digest algorithm is not SHA-512".to_owned());
        }
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or("public key bit string has unused bits")?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(
            bits.try_into().map_err(|_| "an Ed25519 key is 32 bytes")?,
        )
        .map_err(|_| "bad Ed25519 public key")?;
        let sig = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| "an Ed25519 signature is 64 bytes")?;
        return key
            .verify_strict(message, &sig)
            .map_err(|_| "the Ed25519 signature does not verify".to_owned());
    }
    let hash = signature_hash(alg, hint)?;
    let hashed = digest(hash, message);
    let key_bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or("public key bit string has unused bits")?;
    if spki.algorithm.oid == RSA_ENCRYPTION || spki.algorithm.oid == ID_RSASSA_PSS {
        let key = rsa_key(key_bits)?;
        let result = if alg.oid == ID_RSASSA_PSS {
            let (_, salt) = pss_params(alg)?;
            match hash {
                HashAlgorithm::Sha256 => key.verify(
                    rsa::Pss::new_with_salt::<sha2::Sha256>(salt),
                    &hashed,
                    signature,
                ),
                HashAlgorithm::Sha384 => key.verify(
                    rsa::Pss::new_with_salt::<sha2::Sha384>(salt),
                    &hashed,
                    signature,
                ),
                HashAlgorithm::Sha512 => key.verify(
                    rsa::Pss::new_with_salt::<sha2::Sha512>(salt),
                    &hashed,
                    signature,
                ),
            }
        } else {
            match hash {
                HashAlgorithm::Sha256 => {
                    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hashed, signature)
                }
                HashAlgorithm::Sha384 => {
                    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), &hashed, signature)
                }
                HashAlgorithm::Sha512 => {
                    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), &hashed, signature)
                }
            }
        };
        return result.map_err(|_| "the RSA signature does not verify".to_owned());
    }
    if spki.algorithm.oid == ID_EC_PUBLIC_KEY {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or("EC key without a named curve")?;
        let ok = match curve {
            SECP256R1 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bits)
                    .map_err(|_| "bad P-256 public key")?;
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| "bad ECDSA signature encoding")?;
                key.verify_prehash(&hashed, &sig).is_ok()
            }
            SECP384R1 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bits)
                    .map_err(|_| "bad P-384 public key")?;
                let sig = p384::ecdsa::Signature::from_der(signature)
                    .map_err(|_| "bad ECDSA signature encoding")?;
                key.verify_prehash(&hashed, &sig).is_ok()
            }
            other => return Err(format!("unsupported curve {other}")),
        };
        return if ok {
            Ok(())
        } else {
            Err("the ECDSA signature does not verify".to_owned())
        };
    }
    Err(format!(
        "unsupported public key algorithm {}",
        spki.algorithm.oid
    ))
}

fn rsa_key(bits: &[u8]) -> Result<rsa::RsaPublicKey, String> {
    let seq = tlv::read(bits).ok_or("bad RSA public key")?;
    let parts = tlv::children(seq.value).ok_or("bad RSA public key")?;
    if parts.len() != 2 {
        return Err("bad RSA public key".to_owned());
    }
    rsa::RsaPublicKey::new_with_max_size(
        rsa::BigUint::from_bytes_be(parts[0].value),
        rsa::BigUint::from_bytes_be(parts[1].value),
        16384,
    )
    .map_err(|e| format!("bad RSA public key: {e}"))
}

/// A certificate with its DER (the exact bytes, for hashing and TBS checks).
#[derive(Clone)]
pub(crate) struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl Cert {
    pub(crate) fn parse(der: &[u8]) -> Result<Cert, String> {
        let outer = tlv::read(der).ok_or("not a DER certificate")?;
        let der = outer.raw.to_vec();
        let cert = Certificate::from_der(&der).map_err(|e| e.to_string())?;
        Ok(Cert { der, cert })
    }

    pub(crate) fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// Whether `issuer` signed this certificate.
    pub(crate) fn signed_by(&self, issuer: &Cert) -> bool {
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return false;
        }
        let Some(outer) = tlv::read(&self.der) else {
            return false;
        };
        let Some(parts) = tlv::children(outer.value) else {
            return false;
        };
        let Some(tbs) = parts.first() else {
            return false;
        };
        let Some(sig) = self.cert.signature.as_bytes() else {
            return false;
        };
        verify(
            &issuer.cert.tbs_certificate.subject_public_key_info,
            &self.cert.signature_algorithm,
            None,
            tbs.raw,
            sig,
        )
        .is_ok()
    }

    /// Valid at `unix` seconds.
    pub(crate) fn valid_at(&self, unix: i64) -> bool {
        let v = &self.cert.tbs_certificate.validity;
        let nb = v.not_before.to_unix_duration().as_secs() as i64;
        let na = v.not_after.to_unix_duration().as_secs() as i64;
        nb <= unix && unix <= na
    }

    pub(crate) fn is_ca(&self) -> bool {
        const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
        self.cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == BASIC_CONSTRAINTS)
            .and_then(|e| {
                x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()).ok()
            })
            .is_some_and(|bc| bc.ca)
    }

    /// Whether the extended key usage lists `purpose`.
    pub(crate) fn has_eku(&self, purpose: ObjectIdentifier) -> bool {
        const EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
        self.cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == EKU)
            .and_then(|e| {
                x509_cert::ext::pkix::ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok()
            })
            .is_some_and(|eku| eku.0.contains(&purpose))
    }
}

/// Builds a path from `leaf` through `pool` to one of `roots`, checking every signature and
/// that every certificate is valid at `at` (unix seconds). Returns the path, root last.
pub(crate) fn chain_to_root(
    leaf: &Cert,
    pool: &[Cert],
    roots: &[Cert],
    at: i64,
) -> Result<Vec<Cert>, String> {
    let mut path = vec![leaf.clone()];
    for _ in 0..10 {
        let current = &path[path.len() - 1];
        if !current.valid_at(at) {
            return Err(format!(
                "certificate '{}' is not valid at the signing time",
                current.subject()
            ));
        }
        if let Some(root) = roots.iter().find(|r| r.der == current.der) {
            let _ = root;
            return Ok(path);
        }
        if let Some(root) = roots.iter().find(|r| current.signed_by(r)) {
            if !root.valid_at(at) {
                return Err(format!(
                    "trust root '{}' is not valid at the signing time",
                    root.subject()
                ));
            }
            path.push(root.clone());
            return Ok(path);
        }
        let next = pool
            .iter()
            .find(|c| c.is_ca() && !path.iter().any(|p| p.der == c.der) && current.signed_by(c))
            .cloned();
        match next {
            Some(issuer) => path.push(issuer),
            None => {
                return Err(format!(
                    "no trusted root issued '{}' (issuer '{}')",
                    current.subject(),
                    current.cert.tbs_certificate.issuer
                ))
            }
        }
    }
    Err("the certificate chain is too long".to_owned())
}

/// Parses PEM or DER certificates (trust roots given by the user).
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs = Certificate::load_pem_chain(bytes).map_err(|e| e.to_string())?;
        certs
            .iter()
            .map(|c| c.to_der().map_err(|e| e.to_string()))
            .collect()
    } else {
        Cert::parse(bytes).map(|c| vec![c.der])
    }
}
