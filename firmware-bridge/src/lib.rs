//! seald-firmware-bridge: seal keys on serial-attached signing devices.
//!
//! Devices attach over USB serial (CDC-ACM) and speak the Tillitis TKey framing protocol
//! ([`frame`]). Two device profiles are supported ([`Profile`]):
//!
//! - **Ed25519**: a TKey running the Tillitis signer app (loaded by the host through the
//!   firmware's commands, with its digest checked), signing messages of up to 4 KiB after a
//!   touch;
//! - **P-256**: seald's seal-appliance profile on the same framing, ECDSA P-256 over a SHA-256
//!   digest, so that its signatures validate in common PDF readers (docs/firmware-bridge.md
//!   specifies it for firmware authors).
//!
//! A [`Device`] finds its port (a path, or USB VID/PID and serial number), runs one operation
//! at a time, reports its [`Status`] (ready, busy, absent, waiting for touch), reconnects after
//! an unplug, and is a [`seald_signer::Signer`] through [`DeviceSigner`]. The [`emulator`]
//! speaks both profiles on a pseudo-terminal, with fault modes, for tests. This crate knows
//! nothing of PDFs or policy.

use std::time::Duration;

pub mod commands;
mod device;
mod discover;
pub mod emulator;
pub mod frame;
pub mod port;
pub mod proto;

pub use commands::{Mode, NameVersion, Udi};
pub use device::{
    uss_from_file, uss_from_passphrase, Device, DeviceConfig, DeviceInfo, DeviceSigner, PublicKey,
    Status,
};
pub use discover::{find, usb_ports, Found, Selector, UsbId};
pub use frame::{Endpoint, Frame, Header, Len, Link};

/// A device profile: which app the device runs and how it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// The TKey signer app: Ed25519 (RFC 8032, pure) over the message itself.
    Ed25519,
    /// seald's seal-appliance app: ECDSA P-256 over a SHA-256 digest.
    P256,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "ed25519" => Some(Profile::Ed25519),
            "p256" => Some(Profile::P256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Ed25519 => "ed25519",
            Profile::P256 => "p256",
        }
    }
}

/// What went wrong with a device. Each is distinct, so that callers tell a missing touch from
/// an unplugged device from a broken one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no device: {0}")]
    Absent(String),
    #[error("the device failed to {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from the device while waiting for {waiting_for} ({} ms)", after.as_millis())]
    Timeout {
        waiting_for: &'static str,
        after: Duration,
    },
    #[error("nobody touched the device within {} s", after.as_secs())]
    TouchTimeout { after: Duration },
    #[error("the device is busy with another operation")]
    Busy,
    #[error("the device's {endpoint:?} refused the command (NOK)")]
    Nok { endpoint: Endpoint },
    #[error("a frame header with the reserved bit set ({0:#04x})")]
    BadHeader(u8),
    #[error("a response to frame {got}, but the command was frame {sent}")]
    FrameId { sent: u8, got: u8 },
    #[error("a frame broke off after {got} of {expected} bytes")]
    ShortFrame { expected: usize, got: usize },
    #[error("response code {got:#04x}, expected {expected:#04x}")]
    UnexpectedResponse { expected: u8, got: u8 },
    #[error("the device answered {command} with status {status}")]
    BadStatus { command: &'static str, status: u8 },
    #[error("the firmware loaded an app with digest {got}, not the app's {expected}")]
    AppDigest { expected: String, got: String },
    #[error("the device runs {found}, not the {profile:?} profile's app ({expected})")]
    WrongApp {
        profile: Profile,
        expected: String,
        found: String,
    },
    #[error("the device is in firmware mode and no app is configured to load")]
    NoApp,
    #[error("the device's key is not the certificate's")]
    KeyMismatch,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("{0}")]
    InvalidInput(String),
}

impl Error {
    /// Whether the device is gone (unplugged, port closed): reconnecting may help.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Error::Absent(_) | Error::Io { .. })
    }
}
