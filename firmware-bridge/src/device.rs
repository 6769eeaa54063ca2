//! A configured device: found by its selector, connected on first use (loading its app when
//! it is in firmware mode), one operation at a time, its status for readiness checks and
//! metrics, and a reconnect after an unplug.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use seald_signer::{EcCurve, HashAlgorithm, SignError, SignErrorKind, SignatureAlgorithm, Signer};
use sha2::{Digest, Sha256};

use crate::commands::{self, Mode, NameVersion};
use crate::discover::{self, Selector};
use crate::frame::Link;
use crate::{Error, Profile};

/// The user-supplied secret a TKey's firmware mixes into the app's keys: the BLAKE2s-256 of a
/// passphrase, as the firmware's documentation asks. (Tillitis's Go client sends it shifted by
/// one byte on Bellatrix TKeys, for compatibility with an old bug of its own; seald sends it
/// whole, so the same passphrase gives other keys than those tools. Certify the key seald
/// derives, with `sealctl device csr --uss-file`.)
pub fn uss_from_passphrase(passphrase: &[u8]) -> zeroize::Zeroizing<[u8; 32]> {
    use blake2::Digest;
    zeroize::Zeroizing::new(blake2::Blake2s256::digest(passphrase).into())
}

/// The user-supplied secret from a file holding the passphrase (one trailing newline is not
/// part of it).
pub fn uss_from_file(path: &std::path::Path) -> Result<zeroize::Zeroizing<[u8; 32]>, Error> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", path.display())))?,
    );
    let text = bytes
        .strip_suffix(b"\n")
        .map(|t| t.strip_suffix(b"\r").unwrap_or(t))
        .unwrap_or(&bytes);
    if text.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{} holds no passphrase",
            path.display()
        )));
    }
    Ok(uss_from_passphrase(text))
}

/// How a device is used.
#[derive(Clone)]
pub struct DeviceConfig {
    /// The name seald knows it by.
    pub name: String,
    pub selector: Selector,
    pub profile: Profile,
    /// The app to load when the device is in firmware mode (for a TKey, the signer's binary).
    pub app: Option<Vec<u8>>,
    /// The user-supplied secret given to the firmware with the app (it changes the keys).
    pub uss: Option<zeroize::Zeroizing<[u8; 32]>>,
    /// How long a signature waits for the touch (the TKey signer itself gives up after 30 s).
    pub touch_timeout: Duration,
    /// How long an operation waits for the one before it.
    pub busy_timeout: Duration,
}

impl std::fmt::Debug for DeviceConfig {
    // The app binary is long and the user-supplied secret is a secret: neither is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("name", &self.name)
            .field("selector", &self.selector)
            .field("profile", &self.profile)
            .field("app_bytes", &self.app.as_ref().map(Vec::len))
            .field("uss", &self.uss.as_ref().map(|_| "<secret>"))
            .field("touch_timeout", &self.touch_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .finish()
    }
}

impl DeviceConfig {
    pub fn new(name: impl Into<String>, selector: Selector, profile: Profile) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            selector,
            profile,
            app: None,
            uss: None,
            touch_timeout: Duration::from_secs(35),
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// A device's public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    Ed25519([u8; 32]),
    /// x ‖ y.
    P256([u8; 64]),
}

impl PublicKey {
    /// The DER SubjectPublicKeyInfo (what a CA certifies).
    pub fn spki_der(&self) -> Vec<u8> {
        // The fixed AlgorithmIdentifier prefixes: id-ecPublicKey with prime256v1, id-Ed25519.
        const P256: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
        const ED25519: &str = "302a300506032b6570032100";
        let prefix = match self {
            PublicKey::P256(_) => P256,
            PublicKey::Ed25519(_) => ED25519,
        };
        let mut der = hex::decode(prefix).unwrap_or_default();
        der.extend_from_slice(&self.spki_bytes());
        der
    }

    /// The key as a certificate's subjectPublicKey carries it (SEC1 uncompressed for P-256).
    pub fn spki_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.to_vec(),
            PublicKey::P256(xy) => {
                let mut v = Vec::with_capacity(65);
                v.push(4);
                v.extend_from_slice(xy);
                v
            }
        }
    }
}

/// Where a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Connected, idle.
    Ready,
    /// An operation is under way.
    Busy,
    /// Not connected: unplugged, not found, or not answering as it should.
    Absent,
    /// A signature waits for a touch.
    WaitingForTouch,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Ready,
        Status::Busy,
        Status::WaitingForTouch,
        Status::Absent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::Busy => "busy",
            Status::Absent => "absent",
            Status::WaitingForTouch => "waiting_for_touch",
        }
    }
}

/// What `sealctl device info` shows.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub name: String,
    pub path: PathBuf,
    pub profile: Profile,
    /// Whether the firmware answered (and the app was loaded) when it connected.
    pub loaded_app: bool,
    pub app: NameVersion,
    pub public_key: PublicKey,
}

struct Conn {
    link: Link<Box<dyn serialport::SerialPort>>,
    path: PathBuf,
    loaded_app: bool,
    app: NameVersion,
    key: PublicKey,
}

/// The device's state, under one lock: whether an operation holds it, the connection, the
/// status, and when the device last answered or was last looked for.
struct Slot {
    busy: bool,
    conn: Option<Conn>,
    status: Status,
    last_contact: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// How often a readiness check talks to the device (or looks for an absent one).
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// A configured device.
pub struct Device {
    config: DeviceConfig,
    slot: Mutex<Slot>,
    freed: Condvar,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.config.name)
            .field("selector", &self.config.selector)
            .field("profile", &self.config.profile)
            .field("status", &self.status())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The device's slot, held by one operation; given back when dropped (a panic included).
struct Lease<'a> {
    device: &'a Device,
    conn: Option<Conn>,
    /// The device answered during this operation.
    answered: bool,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut slot = lock(&self.device.slot);
        slot.busy = false;
        slot.conn = self.conn.take();
        slot.status = if slot.conn.is_some() {
            Status::Ready
        } else {
            Status::Absent
        };
        if self.answered {
            slot.last_contact = Some(Instant::now());
        }
        drop(slot);
        self.device.freed.notify_one();
    }
}

impl Device {
    pub fn new(config: DeviceConfig) -> Device {
        Device {
            config,
            slot: Mutex::new(Slot {
                busy: false,
                conn: None,
                status: Status::Absent,
                last_contact: None,
                last_attempt: None,
            }),
            freed: Condvar::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn profile(&self) -> Profile {
        self.config.profile
    }

    pub fn status(&self) -> Status {
        lock(&self.slot).status
    }

    /// Sets the status of the operation under way (its lease holds the slot).
    fn set_status(&self, s: Status) {
        lock(&self.slot).status = s;
    }

    /// Takes the device for one operation, connecting first if need be; waits at most `wait`
    /// for an operation under way to end, then answers `Busy`.
    fn lease(&self, wait: Duration) -> Result<Lease<'_>, Error> {
        let deadline = Instant::now() + wait;
        let mut slot = lock(&self.slot);
        while slot.busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Busy);
            }
            slot = self
                .freed
                .wait_timeout(slot, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        slot.busy = true;
        let conn = slot.conn.take();
        if conn.is_some() {
            slot.status = Status::Busy;
        } else {
            slot.last_attempt = Some(Instant::now());
        }
        drop(slot);
        let mut lease = Lease {
            device: self,
            conn,
            answered: false,
        };
        if lease.conn.is_none() {
            lease.conn = Some(self.connect()?);
            lease.answered = true;
            self.set_status(Status::Busy);
        }
        Ok(lease)
    }

    /// Runs `op` on the connection; a disconnect drops it (the next operation reconnects).
    /// A readiness `probe` does not wait for an operation under way, and any error of its
    /// drops the connection.
    fn operate_with<T>(
        &self,
        probe: bool,
        op: impl FnOnce(&mut Conn, &Device) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let wait = if probe {
            Duration::ZERO
        } else {
            self.config.busy_timeout
        };
        let mut lease = self.lease(wait)?;
        let Some(conn) = lease.conn.as_mut() else {
            return Err(Error::Absent(self.config.selector.to_string()));
        };
        let result = op(conn, self);
        match &result {
            Ok(_) => lease.answered = true,
            Err(e) if e.is_disconnect() || probe => {
                tracing::warn!(device = %self.config.name, error = %e, "signing device disconnected");
                lease.conn = None;
            }
            Err(_) => {}
        }
        result
    }

    fn operate<T>(
        &self,
        op: impl FnOnce(&mut Conn, &Device) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.operate_with(false, op)
    }

    fn connect(&self) -> Result<Conn, Error> {
        let found = discover::find(&self.config.selector)?;
        let path = found
            .into_iter()
            .next()
            .map(|f| f.path)
            .ok_or_else(|| Error::Absent(format!("nothing at {}", self.config.selector)))?;
        let mut link = Link::new(crate::port::open(&path)?);
        link.resync()?;
        let loaded_app = match commands::probe(&mut link)? {
            Mode::Firmware(_) => {
                let app = self.config.app.as_deref().ok_or(Error::NoApp)?;
                commands::load_app(&mut link, app, self.config.uss.as_deref())?;
                true
            }
            Mode::App => false,
        };
        let app = commands::app_name_version(&mut link)?;
        let (name0, name1) = commands::expected_app(self.config.profile);
        if &app.name0 != name0 || &app.name1 != name1 {
            return Err(Error::WrongApp {
                profile: self.config.profile,
                expected: format!(
                    "{}{}",
                    String::from_utf8_lossy(name0),
                    String::from_utf8_lossy(name1)
                ),
                found: app.name(),
            });
        }
        let key = match self.config.profile {
            Profile::Ed25519 => PublicKey::Ed25519(commands::ed25519_public_key(&mut link)?),
            Profile::P256 => PublicKey::P256(commands::p256_public_key(&mut link)?),
        };
        tracing::info!(device = %self.config.name, path = %path.display(), app = %app.name(), "signing device connected");
        Ok(Conn {
            link,
            path,
            loaded_app,
            app,
            key,
        })
    }

    /// Says where the device is, for readiness checks: it asks a connected device for its
    /// app's name (a device that does not answer is dropped as absent) and looks for an absent
    /// one, at most every [`CHECK_INTERVAL`]; a device in use is not waited for.
    pub fn check(&self) -> Status {
        {
            let slot = lock(&self.slot);
            let recent = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < CHECK_INTERVAL);
            let fresh = if slot.conn.is_some() {
                recent(slot.last_contact)
            } else {
                recent(slot.last_attempt)
            };
            if slot.busy || fresh {
                return slot.status;
            }
        }
        match self.operate_with(true, |c, _| {
            commands::app_name_version(&mut c.link).map(|_| ())
        }) {
            Err(Error::Busy) => Status::Busy,
            _ => self.status(),
        }
    }

    pub fn public_key(&self) -> Result<PublicKey, Error> {
        self.operate(|c, _| Ok(c.key))
    }

    pub fn info(&self) -> Result<DeviceInfo, Error> {
        self.operate(|c, d| {
            Ok(DeviceInfo {
                name: d.config.name.clone(),
                path: c.path.clone(),
                profile: d.config.profile,
                loaded_app: c.loaded_app,
                app: c.app,
                public_key: c.key,
            })
        })
    }

    /// Signs `message` (after a touch): Ed25519 over the message itself, or ECDSA P-256 over its
    /// SHA-256 digest, DER-encoded. With `expected`, the device's key must be that one (a
    /// swapped device signs nothing). Every signature is verified before it is returned.
    pub fn sign(&self, message: &[u8], expected: Option<&PublicKey>) -> Result<Vec<u8>, Error> {
        let touch = self.config.touch_timeout;
        self.operate(|conn, dev| {
            if expected.is_some_and(|k| *k != conn.key) {
                return Err(Error::KeyMismatch);
            }
            dev.set_status(Status::WaitingForTouch);
            match conn.key {
                PublicKey::Ed25519(pk) => {
                    let sig = commands::ed25519_sign(&mut conn.link, message, touch)?;
                    let key = ed25519_dalek::VerifyingKey::from_bytes(&pk)
                        .map_err(|e| Error::Protocol(format!("the device's public key: {e}")))?;
                    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
                        .map_err(|_| {
                            Error::Protocol("the device's signature does not verify".to_owned())
                        })?;
                    Ok(sig.to_vec())
                }
                PublicKey::P256(xy) => {
                    use p256::ecdsa::signature::hazmat::PrehashVerifier;
                    let digest: [u8; 32] = Sha256::digest(message).into();
                    let rs = commands::p256_sign_digest(&mut conn.link, &digest, touch)?;
                    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(
                        &PublicKey::P256(xy).spki_bytes(),
                    )
                    .map_err(|e| Error::Protocol(format!("the device's public key: {e}")))?;
                    let sig = p256::ecdsa::Signature::from_slice(&rs)
                        .map_err(|e| Error::Protocol(format!("the device's signature: {e}")))?;
                    key.verify_prehash(&digest, &sig).map_err(|_| {
                        Error::Protocol("the device's signature does not verify".to_owned())
                    })?;
                    Ok(sig.to_der().as_bytes().to_vec())
                }
            }
        })
    }
}

/// A seal key on a device, with its certificate chain: seald's [`Signer`] seam.
#[derive(Debug)]
pub struct DeviceSigner {
    device: Arc<Device>,
    chain: Vec<Vec<u8>>,
    key: PublicKey,
    algorithm: SignatureAlgorithm,
}

impl DeviceSigner {
    /// The key of `device` certified by `chain` (DER, the seal's certificate first). The
    /// certificate's key must suit the device's profile (P-256, Ed25519); that the device holds
    /// that key is checked at every signature.
    pub fn new(device: Arc<Device>, chain: Vec<Vec<u8>>) -> Result<DeviceSigner, Error> {
        use der::Decode;
        let first = chain
            .first()
            .ok_or_else(|| Error::InvalidInput("an empty certificate chain".to_owned()))?;
        let cert = x509_cert::Certificate::from_der(first)
            .map_err(|e| Error::InvalidInput(format!("the seal's certificate: {e}")))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let bits = spki.subject_public_key.raw_bytes();
        let (key, algorithm) = match device.profile() {
            Profile::P256 => {
                if bits.len() != 65 || bits[0] != 4 || spki.algorithm.oid != const_oid_ec() {
                    return Err(Error::InvalidInput(
                        "the seal's certificate has no uncompressed P-256 key for a p256 device"
                            .to_owned(),
                    ));
                }
                let mut xy = [0u8; 64];
                xy.copy_from_slice(&bits[1..]);
                (
                    PublicKey::P256(xy),
                    SignatureAlgorithm::Ecdsa {
                        curve: EcCurve::P256,
                        hash: HashAlgorithm::Sha256,
                    },
                )
            }
            Profile::Ed25519 => {
                if bits.len() != 32 || spki.algorithm.oid != const_oid_ed25519() {
                    return Err(Error::InvalidInput(
                        "the seal's certificate has no Ed25519 key for an ed25519 device"
                            .to_owned(),
                    ));
                }
                let mut k = [0u8; 32];
                k.copy_from_slice(bits);
                (PublicKey::Ed25519(k), SignatureAlgorithm::Ed25519)
            }
        };
        Ok(DeviceSigner {
            device,
            chain,
            key,
            algorithm,
        })
    }

    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// Connects to the device if need be and checks it holds the key the certificate names
    /// ([`Error::KeyMismatch`] otherwise), as every signature does too.
    pub fn check_device(&self) -> Result<(), Error> {
        if self.device.public_key()? == self.key {
            Ok(())
        } else {
            Err(Error::KeyMismatch)
        }
    }
}

fn const_oid_ed25519() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("1.3.101.112")
}

fn const_oid_ec() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1")
}

impl From<Error> for SignError {
    fn from(e: Error) -> SignError {
        let kind = match e {
            Error::Absent(_) | Error::Io { .. } | Error::Timeout { .. } => {
                SignErrorKind::Unavailable
            }
            Error::TouchTimeout { .. } => SignErrorKind::NoUserPresence,
            Error::Busy => SignErrorKind::Busy,
            Error::NoApp | Error::WrongApp { .. } | Error::KeyMismatch => {
                SignErrorKind::Misconfigured
            }
            _ => SignErrorKind::Failed,
        };
        SignError::new(kind, e)
    }
}

impl Signer for DeviceSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn certificate_chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.device
            .sign(message, Some(&self.key))
            .map_err(SignError::from)
    }
}
