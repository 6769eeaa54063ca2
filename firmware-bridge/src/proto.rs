//! Command and response codes, shared by the host side and the emulator. The firmware and
//! Ed25519 signer codes are the Tillitis TKey's (firmware TK1-24.03, tkey-device-signer
//! v1.0); the P-256 codes are seald's seal-appliance profile (docs/firmware-bridge.md).

/// Status byte values (frame byte 2 of responses that carry one).
pub const STATUS_OK: u8 = 0;
pub const STATUS_BAD: u8 = 1;
/// P-256 profile only: no touch came in time.
pub const STATUS_TOUCH_TIMEOUT: u8 = 2;

/// Firmware (endpoint 2).
pub mod fw {
    pub const CMD_NAME_VERSION: u8 = 0x01;
    pub const RSP_NAME_VERSION: u8 = 0x02;
    pub const CMD_LOAD_APP: u8 = 0x03;
    pub const RSP_LOAD_APP: u8 = 0x04;
    pub const CMD_LOAD_APP_DATA: u8 = 0x05;
    pub const RSP_LOAD_APP_DATA: u8 = 0x06;
    pub const RSP_LOAD_APP_DATA_READY: u8 = 0x07;
    pub const CMD_GET_UDI: u8 = 0x08;
    pub const RSP_GET_UDI: u8 = 0x09;
    /// The largest app the firmware loads (its RAM).
    pub const APP_MAX_SIZE: usize = 0x20000;
    pub const NAME0: &[u8; 4] = b"tk1 ";
    pub const NAME1: &[u8; 4] = b"mkdf";
}

/// The Ed25519 signer app (endpoint 3).
pub mod signer {
    pub const CMD_GET_PUBKEY: u8 = 0x01;
    pub const RSP_GET_PUBKEY: u8 = 0x02;
    pub const CMD_SET_SIZE: u8 = 0x03;
    pub const RSP_SET_SIZE: u8 = 0x04;
    pub const CMD_LOAD_DATA: u8 = 0x05;
    pub const RSP_LOAD_DATA: u8 = 0x06;
    pub const CMD_GET_SIG: u8 = 0x07;
    pub const RSP_GET_SIG: u8 = 0x08;
    pub const CMD_GET_NAMEVERSION: u8 = 0x09;
    pub const RSP_GET_NAMEVERSION: u8 = 0x0a;
    /// The longest message it signs.
    pub const MAX_MESSAGE: usize = 4096;
    pub const NAME0: &[u8; 4] = b"tk1 ";
    pub const NAME1: &[u8; 4] = b"sign";
}

/// seald's P-256 seal-appliance app (endpoint 3).
pub mod p256 {
    pub const CMD_GET_PUBKEY: u8 = 0x01;
    pub const RSP_GET_PUBKEY: u8 = 0x02;
    pub const CMD_SIGN_DIGEST: u8 = 0x03;
    pub const RSP_SIGN_DIGEST: u8 = 0x04;
    pub const CMD_GET_NAMEVERSION: u8 = 0x09;
    pub const RSP_GET_NAMEVERSION: u8 = 0x0a;
    pub const NAME0: &[u8; 4] = b"seal";
    pub const NAME1: &[u8; 4] = b"p256";
}
