//! Seal keys on a token: finding them, their type, and their public halves.

use std::fmt;

use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1};
use const_oid::ObjectIdentifier;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::asn1::{AnyRef, BitString, OctetStringRef, UintRef};
use der::{Decode, Encode, Sequence};
use seald_signer::{EcCurve, SignatureAlgorithm};
use serde::Serialize;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::error::{Error, Result};

/// How a key is named on the token: by `CKA_LABEL` or by `CKA_ID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySelector {
    Label(String),
    Id(Vec<u8>),
}

impl KeySelector {
    pub(crate) fn attribute(&self) -> Attribute {
        match self {
            KeySelector::Label(label) => Attribute::Label(label.as_bytes().to_vec()),
            KeySelector::Id(id) => Attribute::Id(id.clone()),
        }
    }
}

impl fmt::Display for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySelector::Label(label) => write!(f, "labelled '{label}'"),
            KeySelector::Id(id) => write!(f, "with id {}", hex::encode(id)),
        }
    }
}

/// The kind of a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum KeyKind {
    Rsa { bits: usize },
    Ec { curve: Curve },
}

/// Curves seald signs with (a serializable mirror of [`EcCurve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Curve {
    #[serde(rename = "P-256")]
    P256,
    #[serde(rename = "P-384")]
    P384,
}

impl From<Curve> for EcCurve {
    fn from(c: Curve) -> EcCurve {
        match c {
            Curve::P256 => EcCurve::P256,
            Curve::P384 => EcCurve::P384,
        }
    }
}

impl Curve {
    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            Curve::P256 => SECP_256_R_1,
            Curve::P384 => SECP_384_R_1,
        }
    }

    fn from_oid(oid: &ObjectIdentifier) -> Option<Curve> {
        if *oid == SECP_256_R_1 {
            Some(Curve::P256)
        } else if *oid == SECP_384_R_1 {
            Some(Curve::P384)
        } else {
            None
        }
    }

    /// The DER `CKA_EC_PARAMS` value (the named curve's OID).
    pub(crate) fn ec_params(self) -> Vec<u8> {
        // Encoding a constant OID cannot fail.
        self.oid().to_der().unwrap_or_default()
    }

    pub(crate) fn from_ec_params(params: &[u8]) -> Option<Curve> {
        ObjectIdentifier::from_der(params)
            .ok()
            .and_then(|oid| Curve::from_oid(&oid))
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyKind::Ec { curve: Curve::P256 } => f.write_str("EC P-256"),
            KeyKind::Ec { curve: Curve::P384 } => f.write_str("EC P-384"),
        }
    }
}

impl KeyKind {
    /// Whether signatures of `algorithm` can be made with a key of this kind.
    pub fn supports(self, algorithm: SignatureAlgorithm) -> bool {
        match (self, algorithm) {
            (KeyKind::Rsa { .. }, SignatureAlgorithm::RsaPkcs1v15 { .. })
            | (KeyKind::Rsa { .. }, SignatureAlgorithm::RsaPss { .. }) => true,
            (KeyKind::Ec { curve }, SignatureAlgorithm::Ecdsa { curve: wanted, .. }) => {
                EcCurve::from(curve) == wanted
            }
            _ => false,
        }
    }

    /// The algorithm seald uses for this key when none is configured: PKCS#1 v1.5 with SHA-256
    /// for RSA (what every PDF reader verifies), ECDSA with the curve's own hash.
    pub fn default_algorithm(self) -> SignatureAlgorithm {
        match self {
            KeyKind::Rsa { .. } => SignatureAlgorithm::RsaPkcs1v15 {
                hash: seald_signer::HashAlgorithm::Sha256,
            },
            KeyKind::Ec { curve } => SignatureAlgorithm::Ecdsa {
                curve: curve.into(),
                hash: EcCurve::from(curve).default_hash(),
            },
        }
    }
}

/// A public key, read from the token or from a certificate, in a form that compares equal
/// whatever encoding it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    Ec { curve: Curve, point: Vec<u8> },
}

#[derive(Sequence)]
struct RsaPublicKeyDer<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

impl PublicKey {
    pub fn kind(&self) -> KeyKind {
        match self {
            PublicKey::Rsa { modulus, .. } => KeyKind::Rsa {
                bits: modulus_bits(modulus),
            },
            PublicKey::Ec { curve, .. } => KeyKind::Ec { curve: *curve },
        }
    }

    /// DER `SubjectPublicKeyInfo`.
    pub fn to_spki_der(&self) -> Result<Vec<u8>> {
        self.to_spki()?.to_der().map_err(|e| Error::Malformed {
            what: "public key",
            reason: e.to_string(),
        })
    }

    pub(crate) fn to_spki(&self) -> Result<SubjectPublicKeyInfoOwned> {
        let malformed = |e: der::Error| Error::Malformed {
            what: "public key",
            reason: e.to_string(),
        };
        match self {
            PublicKey::Rsa { modulus, exponent } => {
                let key = RsaPublicKeyDer {
                    modulus: UintRef::new(modulus).map_err(malformed)?,
                    public_exponent: UintRef::new(exponent).map_err(malformed)?,
                }
                .to_der()
                .map_err(malformed)?;
                Ok(SubjectPublicKeyInfoOwned {
                    algorithm: AlgorithmIdentifierOwned {
                        oid: RSA_ENCRYPTION,
                        parameters: Some(AnyRef::NULL.into()),
                    },
                    subject_public_key: BitString::from_bytes(&key).map_err(malformed)?,
                })
            }
            PublicKey::Ec { curve, point } => Ok(SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: ID_EC_PUBLIC_KEY,
                    parameters: Some(der::Any::from(&curve.oid())),
                },
                subject_public_key: BitString::from_bytes(point).map_err(malformed)?,
            }),
        }
    }

    /// Reads a `SubjectPublicKeyInfo` (from a certificate).
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<Self> {
        let unsupported = |reason: &str| Error::Certificate {
            context: None,
            reason: reason.to_owned(),
        };
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| unsupported("public key bit string has unused bits"))?;
        if spki.algorithm.oid == RSA_ENCRYPTION {
            let key = RsaPublicKeyDer::from_der(bits)
                .map_err(|e| unsupported(&format!("RSA public key: {e}")))?;
            Ok(PublicKey::Rsa {
                modulus: strip_zeros(key.modulus.as_bytes()),
                exponent: strip_zeros(key.public_exponent.as_bytes()),
            })
        } else if spki.algorithm.oid == ID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .and_then(|oid| Curve::from_oid(&oid))
                .ok_or_else(|| unsupported("EC key on a curve other than P-256 or P-384"))?;
            Ok(PublicKey::Ec {
                curve,
                point: bits.to_vec(),
            })
        } else {
            Err(unsupported(&format!(
                "public key algorithm {} is not RSA or EC",
                spki.algorithm.oid
            )))
        }
    }
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let m = strip_zeros(modulus);
    match m.first() {
        Some(first) => (m.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING by the standard; some tokens return the bare point.
fn ec_point(value: &[u8], curve: Curve) -> Result<Vec<u8>> {
    let bare_len = 1 + 2 * EcCurve::from(curve).field_len();
    if value.len() == bare_len && value[0] == 0x04 {
        return Ok(value.to_vec());
    }
    let inner = OctetStringRef::from_der(value).map_err(|e| Error::Malformed {
        what: "CKA_EC_POINT",
        reason: e.to_string(),
    })?;
    if inner.as_bytes().len() != bare_len || inner.as_bytes()[0] != 0x04 {
        return Err(Error::Malformed {
            what: "CKA_EC_POINT",
            reason: "not an uncompressed point on the key's curve".to_owned(),
        });
    }
    Ok(inner.as_bytes().to_vec())
}

/// A private key found on a token.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub handle: ObjectHandle,
    pub label: String,
    pub id: Vec<u8>,
    pub kind: KeyKind,
    pub can_sign: bool,
}

/// Finds the one private key `selector` names.
pub(crate) fn find_private_key(
    session: &Session,
    token: &str,
    selector: &KeySelector,
) -> Result<KeyInfo> {
    let handles = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            selector.attribute(),
        ])
        .map_err(|e| Error::call(token, e))?;
    match handles.as_slice() {
        [] => Err(Error::KeyNotFound {
            token: token.to_owned(),
            key: selector.clone(),
            what: "private key",
        }),
        [handle] => read_private_key(session, token, selector, *handle),
        many => Err(Error::KeyAmbiguous {
            token: token.to_owned(),
            key: selector.clone(),
            count: many.len(),
        }),
    }
}

pub(crate) fn read_private_key(
    session: &Session,
    token: &str,
    selector: &KeySelector,
    handle: ObjectHandle,
) -> Result<KeyInfo> {
    let attrs = session
        .get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::Sign,
                AttributeType::Modulus,
                AttributeType::EcParams,
            ],
        )
        .map_err(|e| Error::call(token, e))?;
    let mut key_type = None;
    let (mut label, mut id, mut sign) = (String::new(), Vec::new(), false);
    let (mut modulus, mut ec_params) = (None, None);
    for attr in attrs {
        match attr {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
            Attribute::Id(i) => id = i,
            Attribute::Sign(s) => sign = s,
            Attribute::Modulus(m) => modulus = Some(m),
            Attribute::EcParams(p) => ec_params = Some(p),
            _ => {}
        }
    }
    let unusable = |reason: String| Error::KeyUnusable {
        token: token.to_owned(),
        key: selector.clone(),
        reason,
    };
    let kind = match key_type {
        Some(KeyType::RSA) => {
            let bits = match modulus {
                Some(m) => modulus_bits(&m),
                // Some tokens hide the modulus of a private key; the public key has it.
                None => match find_public_key(session, token, &id, &label)? {
                    Some(PublicKey::Rsa { modulus, .. }) => modulus_bits(&modulus),
                    _ => 0,
                },
            };
            KeyKind::Rsa { bits }
        }
        Some(KeyType::EC) => {
            let params = match ec_params {
                Some(p) => p,
                None => {
                    return Err(unusable("the EC key has no CKA_EC_PARAMS".to_owned()));
                }
            };
            let curve = Curve::from_ec_params(&params).ok_or_else(|| {
                unusable("EC key on a curve other than P-256 or P-384".to_owned())
            })?;
            KeyKind::Ec { curve }
        }
        Some(other) => return Err(unusable(format!("key type {other} cannot sign seals"))),
        None => return Err(unusable("the token did not report the key type".to_owned())),
    };
    Ok(KeyInfo {
        handle,
        label,
        id,
        kind,
        can_sign: sign,
    })
}

/// Reads the public key that belongs with a private key: the public key object with the same
/// `CKA_ID` (or, without an id, the same label), else the certificate stored under that id.
pub(crate) fn find_public_key(
    session: &Session,
    token: &str,
    id: &[u8],
    label: &str,
) -> Result<Option<PublicKey>> {
    let selector = if id.is_empty() {
        Attribute::Label(label.as_bytes().to_vec())
    } else {
        Attribute::Id(id.to_vec())
    };
    let handles = session
        .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY), selector.clone()])
        .map_err(|e| Error::call(token, e))?;
    if let Some(handle) = handles.first() {
        return read_public_key(session, token, *handle).map(Some);
    }
    let certs = crate::cert::certificates_with(session, token, selector)?;
    match certs.first() {
        Some(cert) => Ok(Some(cert.public_key()?)),
        None => Ok(None),
    }
}

pub(crate) fn read_public_key(
    session: &Session,
    token: &str,
    handle: ObjectHandle,
) -> Result<PublicKey> {
    let attrs = session
        .get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcParams,
                AttributeType::EcPoint,
            ],
        )
        .map_err(|e| Error::call(token, e))?;
    let (mut key_type, mut modulus, mut exponent, mut params, mut point) =
        (None, None, None, None, None);
    for attr in attrs {
        match attr {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    let malformed = |reason: &str| Error::Malformed {
        what: "public key object",
        reason: reason.to_owned(),
    };
    match key_type {
        Some(KeyType::RSA) => Ok(PublicKey::Rsa {
            modulus: strip_zeros(&modulus.ok_or_else(|| malformed("no CKA_MODULUS"))?),
            exponent: strip_zeros(&exponent.ok_or_else(|| malformed("no CKA_PUBLIC_EXPONENT"))?),
        }),
        Some(KeyType::EC) => {
            let curve =
                Curve::from_ec_params(&params.ok_or_else(|| malformed("no CKA_EC_PARAMS"))?)
                    .ok_or_else(|| malformed("curve other than P-256 or P-384"))?;
            let point = ec_point(&point.ok_or_else(|| malformed("no CKA_EC_POINT"))?, curve)?;
            Ok(PublicKey::Ec { curve, point })
        }
        _ => Err(malformed("not an RSA or EC key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_counts_from_the_top_bit() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        let mut m = vec![0xc0];
        m.extend([0u8; 255]);
        assert_eq!(modulus_bits(&m), 2048);
    }

    #[test]
    fn ec_point_accepts_wrapped_and_bare_points() {
        let mut bare = vec![0x04];
        bare.extend([7u8; 64]);
        let wrapped = OctetStringRef::new(&bare)
            .expect("octets")
            .to_der()
            .expect("der");
        assert_eq!(ec_point(&wrapped, Curve::P256).expect("wrapped"), bare);
        assert_eq!(ec_point(&bare, Curve::P256).expect("bare"), bare);
        assert!(ec_point(&bare, Curve::P384).is_err());
    }

    #[test]
    fn public_keys_round_trip_through_spki() {
        let rsa = PublicKey::Rsa {
            modulus: vec![0xc1; 256],
            exponent: vec![1, 0, 1],
        };
        let ec = PublicKey::Ec {
            curve: Curve::P384,
            point: [vec![4u8], vec![9u8; 96]].concat(),
        };
        for key in [rsa, ec] {
            let der = key.to_spki_der().expect("encode");
            let spki = SubjectPublicKeyInfoOwned::from_der(&der).expect("decode");
            assert_eq!(PublicKey::from_spki(&spki).expect("read"), key);
        }
    }

    #[test]
    fn key_kinds_accept_only_their_algorithms() {
        use seald_signer::HashAlgorithm::*;
        let p256 = KeyKind::Ec { curve: Curve::P256 };
        assert!(p256.supports(SignatureAlgorithm::Ecdsa {
            curve: EcCurve::P256,
            hash: Sha384
        }));
        assert!(!p256.supports(SignatureAlgorithm::Ecdsa {
            curve: EcCurve::P384,
            hash: Sha384
        }));
        assert!(!p256.supports(SignatureAlgorithm::RsaPss { hash: Sha256 }));
        assert!(KeyKind::Rsa { bits: 2048 }.supports(SignatureAlgorithm::RsaPss { hash: Sha512 }));
    }
}
