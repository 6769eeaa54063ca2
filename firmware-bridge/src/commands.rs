//! The commands a host sends: to the firmware (name and version, the unique device id, loading
//! an app with its digest check) and to the signing apps (public key, sign).

use std::time::Duration;

use blake2::{Blake2s256, Digest};

use crate::frame::{Endpoint, Expect, Len, Link};
use crate::port::Port;
use crate::proto::{self, fw, p256, signer, STATUS_OK, STATUS_TOUCH_TIMEOUT};
use crate::Error;

/// How long a device may take to answer anything but a signature.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// A firmware's or an app's name and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameVersion {
    pub name0: [u8; 4],
    pub name1: [u8; 4],
    pub version: u32,
}

impl NameVersion {
    fn parse(p: &[u8]) -> NameVersion {
        let word = |i: usize| [p[i], p[i + 1], p[i + 2], p[i + 3]];
        NameVersion {
            name0: word(0),
            name1: word(4),
            version: u32::from_le_bytes(word(8)),
        }
    }

    /// `tk1 mkdf`, `tk1 sign`…
    pub fn name(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.name0),
            String::from_utf8_lossy(&self.name1)
        )
    }
}

/// The firmware's unique device identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udi {
    pub vendor: u16,
    pub product: u8,
    pub revision: u8,
    pub serial: u32,
}

impl std::fmt::Display for Udi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "0{:04x}:{:x}:{:x}:{:08x}",
            self.vendor, self.product, self.revision, self.serial
        )
    }
}

/// What runs on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The firmware, waiting for an app.
    Firmware(NameVersion),
    /// An app (it answered the firmware probe with NOK).
    App,
}

fn ok_status(frame: &crate::frame::Frame, command: &'static str) -> Result<(), Error> {
    if frame.payload()[0] == STATUS_OK {
        Ok(())
    } else {
        Err(Error::BadStatus {
            command,
            status: frame.payload()[0],
        })
    }
}

fn expect(code: u8, len: Len, waiting_for: &'static str) -> Expect {
    Expect {
        code,
        len,
        within: ANSWER_TIMEOUT,
        waiting_for,
        touch: false,
    }
}

/// Whether the firmware or an app runs: the firmware answers its name; an app, NOK.
pub fn probe<P: Port>(link: &mut Link<P>) -> Result<Mode, Error> {
    match firmware_name_version(link) {
        Ok(nv) => Ok(Mode::Firmware(nv)),
        Err(Error::Nok { .. }) => Ok(Mode::App),
        Err(e) => Err(e),
    }
}

pub fn firmware_name_version<P: Port>(link: &mut Link<P>) -> Result<NameVersion, Error> {
    let f = link.exchange(
        Endpoint::Firmware,
        Len::L1,
        fw::CMD_NAME_VERSION,
        &[],
        expect(fw::RSP_NAME_VERSION, Len::L32, "the firmware's name"),
    )?;
    Ok(NameVersion::parse(f.payload()))
}

pub fn udi<P: Port>(link: &mut Link<P>) -> Result<Udi, Error> {
    let f = link.exchange(
        Endpoint::Firmware,
        Len::L1,
        fw::CMD_GET_UDI,
        &[],
        expect(fw::RSP_GET_UDI, Len::L32, "the device id"),
    )?;
    ok_status(&f, "GET_UDI")?;
    let p = f.payload();
    let w0 = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
    Ok(Udi {
        vendor: ((w0 >> 12) & 0xFFFF) as u16,
        product: ((w0 >> 6) & 0x3F) as u8,
        revision: (w0 & 0x3F) as u8,
        serial: u32::from_le_bytes([p[5], p[6], p[7], p[8]]),
    })
}

/// Loads `app` into the firmware (with a user-supplied secret if given) and checks the digest
/// the firmware reports against the app's own; the app then runs.
pub fn load_app<P: Port>(
    link: &mut Link<P>,
    app: &[u8],
    uss: Option<&[u8; 32]>,
) -> Result<[u8; 32], Error> {
    if app.is_empty() || app.len() > fw::APP_MAX_SIZE {
        return Err(Error::InvalidInput(format!(
            "an app of {} bytes (the firmware loads 1 to {} bytes)",
            app.len(),
            fw::APP_MAX_SIZE
        )));
    }
    let mut first = Vec::with_capacity(37);
    first.extend_from_slice(&(app.len() as u32).to_le_bytes());
    match uss {
        Some(secret) => {
            first.push(1);
            first.extend_from_slice(secret);
        }
        None => first.push(0),
    }
    let f = link.exchange(
        Endpoint::Firmware,
        Len::L128,
        fw::CMD_LOAD_APP,
        &first,
        expect(fw::RSP_LOAD_APP, Len::L4, "the firmware to accept the app"),
    )?;
    ok_status(&f, "LOAD_APP")?;
    let chunks: Vec<&[u8]> = app.chunks(127).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let want = if last {
            expect(
                fw::RSP_LOAD_APP_DATA_READY,
                Len::L128,
                "the loaded app's digest",
            )
        } else {
            expect(
                fw::RSP_LOAD_APP_DATA,
                Len::L4,
                "the firmware to take app data",
            )
        };
        let f = link.exchange(
            Endpoint::Firmware,
            Len::L128,
            fw::CMD_LOAD_APP_DATA,
            chunk,
            want,
        )?;
        ok_status(&f, "LOAD_APP_DATA")?;
        if last {
            let mut got = [0u8; 32];
            got.copy_from_slice(&f.payload()[1..33]);
            let want: [u8; 32] = Blake2s256::digest(app).into();
            if got != want {
                return Err(Error::AppDigest {
                    expected: hex::encode(want),
                    got: hex::encode(got),
                });
            }
            return Ok(got);
        }
    }
    // Not reached: a non-empty app has a last chunk.
    Err(Error::InvalidInput("an empty app".to_owned()))
}

/// The running app's name and version (both apps answer the same command).
pub fn app_name_version<P: Port>(link: &mut Link<P>) -> Result<NameVersion, Error> {
    let f = link.exchange(
        Endpoint::App,
        Len::L1,
        signer::CMD_GET_NAMEVERSION,
        &[],
        expect(signer::RSP_GET_NAMEVERSION, Len::L32, "the app's name"),
    )?;
    Ok(NameVersion::parse(f.payload()))
}

/// The Ed25519 signer's public key.
pub fn ed25519_public_key<P: Port>(link: &mut Link<P>) -> Result<[u8; 32], Error> {
    let f = link.exchange(
        Endpoint::App,
        Len::L1,
        signer::CMD_GET_PUBKEY,
        &[],
        expect(signer::RSP_GET_PUBKEY, Len::L128, "the public key"),
    )?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&f.payload()[..32]);
    Ok(key)
}

/// Signs `message` with the Ed25519 signer: its size, the message in 127-byte chunks, then the
/// signature, which the app gives only after a touch (within `touch`).
pub fn ed25519_sign<P: Port>(
    link: &mut Link<P>,
    message: &[u8],
    touch: Duration,
) -> Result<[u8; 64], Error> {
    if message.is_empty() || message.len() > signer::MAX_MESSAGE {
        return Err(Error::InvalidInput(format!(
            "a message of {} bytes (the signer takes 1 to {})",
            message.len(),
            signer::MAX_MESSAGE
        )));
    }
    let f = link.exchange(
        Endpoint::App,
        Len::L32,
        signer::CMD_SET_SIZE,
        &(message.len() as u32).to_le_bytes(),
        expect(signer::RSP_SET_SIZE, Len::L4, "the signer to take the size"),
    )?;
    ok_status(&f, "SET_SIZE")?;
    for chunk in message.chunks(127) {
        let f = link.exchange(
            Endpoint::App,
            Len::L128,
            signer::CMD_LOAD_DATA,
            chunk,
            expect(signer::RSP_LOAD_DATA, Len::L4, "the signer to take data"),
        )?;
        ok_status(&f, "LOAD_DATA")?;
    }
    let f = link.exchange(
        Endpoint::App,
        Len::L1,
        signer::CMD_GET_SIG,
        &[],
        Expect {
            code: signer::RSP_GET_SIG,
            len: Len::L128,
            within: touch,
            waiting_for: "a touch",
            touch: true,
        },
    )?;
    // The signer answers BAD to GET_SIG only when no touch came.
    if f.payload()[0] != STATUS_OK {
        return Err(Error::TouchTimeout { after: touch });
    }
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&f.payload()[1..65]);
    Ok(sig)
}

/// The P-256 app's public key, x ‖ y (32 bytes each, big-endian).
pub fn p256_public_key<P: Port>(link: &mut Link<P>) -> Result<[u8; 64], Error> {
    let f = link.exchange(
        Endpoint::App,
        Len::L1,
        p256::CMD_GET_PUBKEY,
        &[],
        expect(p256::RSP_GET_PUBKEY, Len::L128, "the public key"),
    )?;
    ok_status(&f, "GET_PUBKEY")?;
    let mut key = [0u8; 64];
    key.copy_from_slice(&f.payload()[1..65]);
    Ok(key)
}

/// Signs a SHA-256 digest with the P-256 app after a touch (within `touch`): r ‖ s.
pub fn p256_sign_digest<P: Port>(
    link: &mut Link<P>,
    digest: &[u8; 32],
    touch: Duration,
) -> Result<[u8; 64], Error> {
    let f = link.exchange(
        Endpoint::App,
        Len::L128,
        p256::CMD_SIGN_DIGEST,
        digest,
        Expect {
            code: p256::RSP_SIGN_DIGEST,
            len: Len::L128,
            within: touch,
            waiting_for: "a touch",
            touch: true,
        },
    )?;
    match f.payload()[0] {
        STATUS_OK => {
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&f.payload()[1..65]);
            Ok(sig)
        }
        STATUS_TOUCH_TIMEOUT => Err(Error::TouchTimeout { after: touch }),
        status => Err(Error::BadStatus {
            command: "SIGN_DIGEST",
            status,
        }),
    }
}

/// Which app a profile expects to find running.
pub fn expected_app(profile: crate::Profile) -> (&'static [u8; 4], &'static [u8; 4]) {
    match profile {
        crate::Profile::Ed25519 => (proto::signer::NAME0, proto::signer::NAME1),
        crate::Profile::P256 => (proto::p256::NAME0, proto::p256::NAME1),
    }
}
