//! Token administration for the UKey / HSM ceremony: initialize a token, set and unblock PINs,
//! generate a seal key pair on the token, make a CSR, import the issued certificate and its
//! chain, list and delete objects. Each function opens its own session and logs in as needed.

use std::fmt;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use serde::Serialize;
use sha2::Digest;

use crate::cert::{self, Certificate};
use crate::error::{Error, PinRole, Result};
use crate::key::{self, Curve, KeyKind, KeySelector, PublicKey};
use crate::login;
use crate::mechanism::MechanismSet;
use crate::module::{Access, Module};
use crate::pin::Pin;
use crate::slot::{SlotDescription, TokenSelector};

/// Key pairs `keygen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa2048,
    Rsa3072,
    EcP256,
    EcP384,
}

impl KeyAlgorithm {
    pub fn kind(self) -> KeyKind {
        match self {
            KeyAlgorithm::Rsa2048 => KeyKind::Rsa { bits: 2048 },
            KeyAlgorithm::Rsa3072 => KeyKind::Rsa { bits: 3072 },
            KeyAlgorithm::EcP256 => KeyKind::Ec { curve: Curve::P256 },
            KeyAlgorithm::EcP384 => KeyKind::Ec { curve: Curve::P384 },
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind().fmt(f)
    }
}

/// Who logs in for an administrative session.
enum Login<'a> {
    Nobody,
    User(&'a Pin),
    So(&'a Pin),
}

/// An administrative read-write session on one token.
struct AdminSession {
    // Field order matters: the session closes before the module access ends.
    session: Session,
    access: Access,
    slot: Slot,
    label: String,
}

impl AdminSession {
    fn open(module: &Module, selector: &TokenSelector, login: Login<'_>) -> Result<Self> {
        let access = module.access()?;
        let (slot, description) = crate::slot::find(&access, selector)?;
        let token = description.token.as_ref();
        let label = description.token_label().to_owned();
        if !token.is_some_and(|t| t.initialized) {
            return Err(Error::TokenNotInitialized { slot: slot.id() });
        }
        let session = access
            .pkcs11()
            .open_rw_session(slot)
            .map_err(|e| Error::call(&label, e))?;
        let admin = AdminSession {
            session,
            access,
            slot,
            label,
        };
        match login {
            Login::Nobody => {}
            Login::User(pin) => admin.login(PinRole::User, pin)?,
            Login::So(pin) => admin.login(PinRole::So, pin)?,
        }
        Ok(admin)
    }

    fn login(&self, role: PinRole, pin: &Pin) -> Result<()> {
        login::login(
            &self.session,
            &self.access,
            self.slot,
            &self.label,
            role,
            pin,
        )
    }

    fn mechanisms(&self) -> Result<MechanismSet> {
        Ok(self
            .access
            .pkcs11()
            .get_mechanism_list(self.slot)
            .map_err(|e| Error::call(&self.label, e))?
            .into_iter()
            .collect())
    }

    fn call_err(&self) -> impl Fn(CkError) -> Error + '_ {
        move |e| Error::call(&self.label, e)
    }
}

fn check_pin_length(description: &SlotDescription, role: PinRole, pin: &Pin) -> Result<()> {
    if let Some(token) = &description.token {
        let (min, max) = (token.pin_min_len, token.pin_max_len);
        // Some modules report 0 for "no limit".
        if (min > 0 && pin.len() < min) || (max > 0 && pin.len() > max) {
            return Err(Error::PinLength {
                token: token.label.clone(),
                role,
                min,
                max,
            });
        }
    }
    Ok(())
}

/// Initializes the token `target` selects (a slot, or for re-initializing, the current label)
/// with `label`, then sets its user PIN.
///
/// Refuses an already initialized token unless `reinit` (which erases it; the module will then
/// demand the current SO PIN), and a label another token already has.
pub fn init_token(
    module: &Module,
    target: &TokenSelector,
    label: &str,
    so_pin: &Pin,
    user_pin: &Pin,
    reinit: bool,
) -> Result<SlotDescription> {
    if label.is_empty() || label.len() > 32 {
        return Err(Error::InvalidArgument(
            "a token label must be 1 to 32 bytes long".to_owned(),
        ));
    }
    {
        let access = module.access()?;
        let (slot_handle, description) = crate::slot::find(&access, target)?;
        let slot = slot_handle.id();
        if let Some(token) = &description.token {
            if token.initialized && !reinit {
                return Err(Error::TokenAlreadyInitialized {
                    slot,
                    label: token.label.clone(),
                });
            }
        }
        check_pin_length(&description, PinRole::So, so_pin)?;
        check_pin_length(&description, PinRole::User, user_pin)?;
        // The new label must name this token only: pools and sealctl select tokens by label.
        if let Ok((other, _)) = crate::slot::find(&access, &TokenSelector::Label(label.to_owned()))
        {
            if other.id() != slot {
                return Err(Error::InvalidArgument(format!(
                    "slot {} already holds a token labelled '{label}'; choose another label",
                    other.id()
                )));
            }
        }
        access
            .pkcs11()
            .init_token(slot_handle, &so_pin.to_auth_pin(), label)
            .map_err(|e| match e {
                CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLocked, _) => {
                    login::pin_error(&access, slot_handle, label, PinRole::So, e)
                }
                CkError::Pkcs11(RvError::SessionExists, _) => Error::SessionsOpen { slot },
                other => Error::call(label, other),
            })?;
    }
    // Some modules (SoftHSM2) move a freshly initialized token to a new slot: find it by label.
    let selector = TokenSelector::Label(label.to_owned());
    let admin = AdminSession::open(module, &selector, Login::So(so_pin))?;
    admin
        .session
        .init_pin(&user_pin.to_auth_pin())
        .map_err(|e| login::pin_error(&admin.access, admin.slot, label, PinRole::User, e))?;
    let _ = admin.session.logout();
    let slot_now = admin.slot;
    let description = SlotDescription::read(&admin.access, slot_now)?;
    Ok(description)
}

/// Changes the user PIN (or, with `role` SO, the SO PIN) given the current one.
pub fn change_pin(
    module: &Module,
    selector: &TokenSelector,
    role: PinRole,
    old: &Pin,
    new: &Pin,
) -> Result<()> {
    let (_, description) = module.find_slot(selector)?;
    check_pin_length(&description, role, new)?;
    let login = match role {
        PinRole::User => Login::User(old),
        PinRole::So => Login::So(old),
    };
    let admin = AdminSession::open(module, selector, login)?;
    admin
        .session
        .set_pin(&old.to_auth_pin(), &new.to_auth_pin())
        .map_err(|e| login::pin_error(&admin.access, admin.slot, &admin.label, role, e))?;
    // Log the SO out; a user login is shared with the process's pools and stays.
    if role == PinRole::So {
        let _ = admin.session.logout();
    }
    Ok(())
}

/// Sets a new user PIN with the SO PIN (after the user PIN was locked or forgotten).
pub fn unblock_pin(
    module: &Module,
    selector: &TokenSelector,
    so_pin: &Pin,
    new_user_pin: &Pin,
) -> Result<()> {
    let (_, description) = module.find_slot(selector)?;
    check_pin_length(&description, PinRole::User, new_user_pin)?;
    let admin = AdminSession::open(module, selector, Login::So(so_pin))?;
    admin
        .session
        .init_pin(&new_user_pin.to_auth_pin())
        .map_err(|e| login::pin_error(&admin.access, admin.slot, &admin.label, PinRole::User, e))?;
    let _ = admin.session.logout();
    Ok(())
}

/// A key pair made by [`generate_key`].
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedKey {
    pub label: String,
    #[serde(serialize_with = "hex_bytes")]
    pub id: Vec<u8>,
    pub kind: KeyKind,
    #[serde(skip)]
    pub public_key: PublicKey,
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

fn objects_with(session: &AdminSession, template: &[Attribute]) -> Result<Vec<ObjectHandle>> {
    session
        .session
        .find_objects(template)
        .map_err(session.call_err())
}

/// Generates a seal key pair on the token: private key sensitive, never extractable and only
/// able to sign; public key able to verify; both with the same `CKA_LABEL` and a fresh random
/// `CKA_ID`.
pub fn generate_key(
    module: &Module,
    selector: &TokenSelector,
    pin: &Pin,
    label: &str,
    algorithm: KeyAlgorithm,
) -> Result<GeneratedKey> {
    if label.is_empty() {
        return Err(Error::InvalidArgument(
            "a key label must not be empty".to_owned(),
        ));
    }
    let admin = AdminSession::open(module, selector, Login::User(pin))?;
    let taken = objects_with(&admin, &[Attribute::Label(label.as_bytes().to_vec())])?;
    if !taken.is_empty() {
        return Err(Error::KeyExists {
            token: admin.label.clone(),
            label: label.to_owned(),
        });
    }
    let generator = match algorithm.kind() {
        KeyKind::Rsa { .. } => MechanismType::RSA_PKCS_KEY_PAIR_GEN,
        KeyKind::Ec { .. } => MechanismType::ECC_KEY_PAIR_GEN,
    };
    if !admin.mechanisms()?.contains(generator) {
        return Err(Error::MechanismUnsupported {
            token: admin.label.clone(),
            algorithm: format!("generating {algorithm} keys ({generator})"),
            disabled: false,
        });
    }
    let id = new_key_id(&admin, label);
    let common = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ]
    };
    let mut public = common(false);
    public.extend([
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
    ]);
    let mut private = common(true);
    private.extend([
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ]);
    let mechanism = match algorithm.kind() {
        KeyKind::Rsa { bits } => {
            public.extend([
                Attribute::ModulusBits((bits as u64).into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ]);
            Mechanism::RsaPkcsKeyPairGen
        }
        KeyKind::Ec { curve } => {
            public.push(Attribute::EcParams(curve.ec_params()));
            Mechanism::EccKeyPairGen
        }
    };
    let (public_handle, _private_handle) = admin
        .session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(admin.call_err())?;
    let public_key = key::read_public_key(&admin.session, &admin.label, public_handle)?;
    Ok(GeneratedKey {
        label: label.to_owned(),
        id,
        kind: public_key.kind(),
        public_key,
    })
}

/// 16 random bytes from the token; from the clock and the label if it has no generator (an
/// identifier needs to be unique, not secret).
fn new_key_id(admin: &AdminSession, label: &str) -> Vec<u8> {
    match admin.session.generate_random_vec(16) {
        Ok(id) => id,
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let mut hash = sha2::Sha256::new();
            hash.update(label.as_bytes());
            hash.update(nanos.to_le_bytes());
            hash.update(std::process::id().to_le_bytes());
            hash.finalize()[..16].to_vec()
        }
    }
}

/// Makes a PKCS#10 request for `key` with `subject` (RFC 4514, e.g. `CN=…,O=…,C=CN`), signed
/// on the token. Returns PEM.
pub fn certificate_request(
    module: &Module,
    selector: &TokenSelector,
    pin: &Pin,
    key: &KeySelector,
    subject: &str,
) -> Result<String> {
    let subject = crate::csr::parse_subject(subject)?;
    let admin = AdminSession::open(module, selector, Login::User(pin))?;
    let info = key::find_private_key(&admin.session, &admin.label, key)?;
    let public_key = key::find_public_key(&admin.session, &admin.label, &info.id, &info.label)?
        .ok_or_else(|| Error::KeyNotFound {
            token: admin.label.clone(),
            key: key.clone(),
            what: "public key for the private key",
        })?;
    let mechanisms = admin.mechanisms()?;
    crate::csr::build(
        &admin.session,
        &admin.label,
        info.handle,
        &public_key,
        subject,
        &mechanisms,
    )
}

/// What [`import_certificate`] stored.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedCertificates {
    pub key_label: String,
    #[serde(serialize_with = "hex_bytes")]
    pub key_id: Vec<u8>,
    pub subject: String,
    /// Certificates of the chain newly stored (those already on the token are not repeated).
    pub chain_added: Vec<String>,
    /// Earlier certificates of this key that were replaced.
    pub replaced: usize,
}

/// Stores `leaf` under the key's `CKA_ID` and `CKA_LABEL` (replacing an earlier certificate of
/// the key), and the `chain` certificates as separate objects. The leaf must carry the key's
/// public key, and the chain must link up by issuer names.
pub fn import_certificate(
    module: &Module,
    selector: &TokenSelector,
    pin: &Pin,
    key: &KeySelector,
    leaf: &Certificate,
    chain: &[Certificate],
) -> Result<ImportedCertificates> {
    let admin = AdminSession::open(module, selector, Login::User(pin))?;
    let info = key::find_private_key(&admin.session, &admin.label, key)?;
    let public_key = key::find_public_key(&admin.session, &admin.label, &info.id, &info.label)?;
    if public_key.as_ref() != Some(&leaf.public_key()?) {
        return Err(Error::CertificateKeyMismatch {
            token: admin.label.clone(),
            key: key.clone(),
        });
    }
    check_chain(leaf, chain)?;

    let old = objects_with(
        &admin,
        &[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(info.id.clone()),
        ],
    )?;
    admin
        .session
        .create_object(&leaf.object_template(&info.label, &info.id)?)
        .map_err(admin.call_err())?;
    for handle in &old {
        admin
            .session
            .destroy_object(*handle)
            .map_err(admin.call_err())?;
    }
    let mut chain_added = Vec::new();
    for ca in chain {
        let present = objects_with(
            &admin,
            &[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Value(ca.der().to_vec()),
            ],
        )?;
        if !present.is_empty() {
            continue;
        }
        // CA certificates get an id derived from their public key, so they never collide
        // with a seal key's id.
        let spki = ca.public_key()?.to_spki_der()?;
        let id = sha2::Sha256::digest(&spki)[..20].to_vec();
        let subject = ca.subject();
        let label: String = subject.chars().take(64).collect();
        admin
            .session
            .create_object(&ca.object_template(&label, &id)?)
            .map_err(admin.call_err())?;
        chain_added.push(subject);
    }
    Ok(ImportedCertificates {
        key_label: info.label,
        key_id: info.id,
        subject: leaf.subject(),
        chain_added,
        replaced: old.len(),
    })
}

/// Each certificate must be issued (by name) by the next; a chain that skips or misorders a
/// certificate is refused rather than stored as a puzzle for verifiers.
fn check_chain(leaf: &Certificate, chain: &[Certificate]) -> Result<()> {
    let mut child = leaf;
    for (i, issuer) in chain.iter().enumerate() {
        if !child.issued_by(issuer) {
            return Err(Error::Certificate {
                context: Some("the chain".to_owned()),
                reason: format!(
                    "certificate {} ('{}') is not the issuer of '{}' (which names '{}'); list the chain from the issuing CA up to the root",
                    i + 1,
                    issuer.subject(),
                    child.subject(),
                    child.issuer()
                ),
            });
        }
        child = issuer;
    }
    Ok(())
}

/// What [`delete_key`] removed.
#[derive(Debug, Clone, Serialize)]
pub struct DeletedKey {
    pub label: String,
    #[serde(serialize_with = "hex_bytes")]
    pub id: Vec<u8>,
    pub private_keys: usize,
    pub public_keys: usize,
    pub certificates: usize,
}

/// Destroys the key pair and the certificates stored under its `CKA_ID`. CA certificates of
/// the chain are left alone (other keys may need them).
pub fn delete_key(
    module: &Module,
    selector: &TokenSelector,
    pin: &Pin,
    key: &KeySelector,
) -> Result<DeletedKey> {
    let admin = AdminSession::open(module, selector, Login::User(pin))?;
    let info = key::find_private_key(&admin.session, &admin.label, key)?;
    let id_or_label = if info.id.is_empty() {
        Attribute::Label(info.label.as_bytes().to_vec())
    } else {
        Attribute::Id(info.id.clone())
    };
    let count = |class: ObjectClass| -> Result<usize> {
        let handles = objects_with(&admin, &[Attribute::Class(class), id_or_label.clone()])?;
        for handle in &handles {
            admin
                .session
                .destroy_object(*handle)
                .map_err(admin.call_err())?;
        }
        Ok(handles.len())
    };
    let certificates = count(ObjectClass::CERTIFICATE)?;
    let public_keys = count(ObjectClass::PUBLIC_KEY)?;
    let private_keys = count(ObjectClass::PRIVATE_KEY)?;
    Ok(DeletedKey {
        label: info.label,
        id: info.id,
        private_keys,
        public_keys,
        certificates,
    })
}

/// One object on a token, as `sealctl token objects` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDescription {
    pub class: &'static str,
    pub label: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyKind>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_after: String,
}

/// Lists the token's objects; private objects only when `pin` is given.
pub fn list_objects(
    module: &Module,
    selector: &TokenSelector,
    pin: Option<&Pin>,
) -> Result<Vec<ObjectDescription>> {
    let login = pin.map(Login::User).unwrap_or(Login::Nobody);
    let admin = AdminSession::open(module, selector, login)?;
    let handles = objects_with(&admin, &[])?;
    let mut objects = Vec::with_capacity(handles.len());
    for handle in handles {
        objects.push(describe(&admin, handle)?);
    }
    objects.sort_by(|a, b| (a.class, &a.label).cmp(&(b.class, &b.label)));
    Ok(objects)
}

fn describe(admin: &AdminSession, handle: ObjectHandle) -> Result<ObjectDescription> {
    use AttributeType as T;
    let attrs = admin
        .session
        .get_attributes(
            handle,
            &[
                T::Class,
                T::Label,
                T::Id,
                T::KeyType,
                T::Private,
                T::Sensitive,
                T::Extractable,
                T::NeverExtractable,
                T::Sign,
                T::Verify,
                T::Decrypt,
                T::Encrypt,
                T::Application,
            ],
        )
        .map_err(admin.call_err())?;
    let mut class = None;
    let (mut label, mut id, mut key_type, mut application) =
        (String::new(), Vec::new(), None, None);
    let mut flags = Vec::new();
    for attr in attrs {
        match attr {
            Attribute::Class(c) => class = Some(c),
            Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
            Attribute::Id(i) => id = i,
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Application(a) => {
                application = Some(String::from_utf8_lossy(&a).into_owned())
            }
            Attribute::Private(true) => flags.push("private"),
            Attribute::Sensitive(true) => flags.push("sensitive"),
            Attribute::Extractable(true) => flags.push("extractable"),
            Attribute::NeverExtractable(true) => flags.push("never-extractable"),
            Attribute::Sign(true) => flags.push("sign"),
            Attribute::Verify(true) => flags.push("verify"),
            Attribute::Decrypt(true) => flags.push("decrypt"),
            Attribute::Encrypt(true) => flags.push("encrypt"),
            _ => {}
        }
    }
    let class_name = match class {
        Some(ObjectClass::PRIVATE_KEY) => "private-key",
        Some(ObjectClass::PUBLIC_KEY) => "public-key",
        Some(ObjectClass::CERTIFICATE) => "certificate",
        Some(ObjectClass::DATA) => "data",
        Some(ObjectClass::SECRET_KEY) => "secret-key",
        _ => "other",
    };
    let key = match (class, key_type) {
        (Some(ObjectClass::PUBLIC_KEY), Some(KeyType::RSA | KeyType::EC)) => {
            key::read_public_key(&admin.session, &admin.label, handle)
                .ok()
                .map(|k| k.kind())
        }
        (Some(ObjectClass::PRIVATE_KEY), Some(KeyType::RSA | KeyType::EC)) => {
            let selector = KeySelector::Label(label.clone());
            key::read_private_key(&admin.session, &admin.label, &selector, handle)
                .ok()
                .map(|k| k.kind)
        }
        _ => None,
    };
    let certificate = if class == Some(ObjectClass::CERTIFICATE) {
        cert::read_certificate(&admin.session, &admin.label, handle)
            .ok()
            .map(|c| CertificateSummary {
                subject: c.subject(),
                issuer: c.issuer(),
                serial: c.serial_hex(),
                not_after: c.not_after(),
            })
    } else {
        None
    };
    Ok(ObjectDescription {
        class: class_name,
        label,
        id: hex::encode(id),
        key,
        flags,
        certificate,
        application: application.filter(|_| class == Some(ObjectClass::DATA)),
    })
}
