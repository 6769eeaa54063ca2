//! Slots and tokens as an administrator sees them, and finding a token by label or slot.

use std::fmt;

use cryptoki::slot::Slot;
use cryptoki_sys::CK_TOKEN_INFO;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::module::Access;

/// How a token is chosen. Labels are preferred: slot ids change when tokens are initialized.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenSelector {
    Label(String),
    Slot(u64),
}

impl fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSelector::Label(label) => write!(f, "token '{label}'"),
            TokenSelector::Slot(slot) => write!(f, "slot {slot}"),
        }
    }
}

/// One slot of a module.
#[derive(Debug, Clone, Serialize)]
pub struct SlotDescription {
    pub slot: u64,
    pub description: String,
    pub manufacturer: String,
    pub removable: bool,
    pub hardware: bool,
    /// `None` when no token is present (or it cannot be read: see `token_error`).
    pub token: Option<TokenDescription>,
    /// Why a token the slot reports present could not be described.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_error: Option<String>,
}

/// A token and its flags, as `sealctl token list` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct TokenDescription {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub initialized: bool,
    pub login_required: bool,
    pub user_pin_initialized: bool,
    pub write_protected: bool,
    pub protected_authentication_path: bool,
    pub user_pin: PinStatus,
    pub so_pin: PinStatus,
    pub pin_min_len: usize,
    pub pin_max_len: usize,
    pub sessions: Option<u64>,
    pub max_sessions: Option<String>,
}

/// The state flags of one PIN.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PinStatus {
    pub count_low: bool,
    pub final_try: bool,
    pub locked: bool,
    pub to_be_changed: bool,
}

impl fmt::Display for PinStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags: Vec<&str> = [
            (self.locked, "LOCKED"),
            (self.final_try, "final-try"),
            (self.count_low, "count-low"),
            (self.to_be_changed, "to-be-changed"),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| *name)
        .collect();
        if flags.is_empty() {
            f.write_str("ok")
        } else {
            f.write_str(&flags.join(","))
        }
    }
}

impl TokenDescription {
    pub(crate) fn from_raw(info: &CK_TOKEN_INFO) -> Self {
        use cryptoki_sys::*;
        let text = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes)
                .trim_end_matches([' ', '\0'])
                .to_owned()
        };
        let flag = |f: CK_FLAGS| info.flags & f != 0;
        let count = |n: CK_ULONG| (n != CK_UNAVAILABLE_INFORMATION).then_some(n);
        let limit = |n: CK_ULONG| match n {
            CK_UNAVAILABLE_INFORMATION => None,
            CK_EFFECTIVELY_INFINITE => Some("unlimited".to_owned()),
            n => Some(n.to_string()),
        };
        TokenDescription {
            label: text(&info.label),
            manufacturer: text(&info.manufacturerID),
            model: text(&info.model),
            serial: text(&info.serialNumber),
            initialized: flag(CKF_TOKEN_INITIALIZED),
            login_required: flag(CKF_LOGIN_REQUIRED),
            user_pin_initialized: flag(CKF_USER_PIN_INITIALIZED),
            write_protected: flag(CKF_WRITE_PROTECTED),
            protected_authentication_path: flag(CKF_PROTECTED_AUTHENTICATION_PATH),
            user_pin: PinStatus {
                count_low: flag(CKF_USER_PIN_COUNT_LOW),
                final_try: flag(CKF_USER_PIN_FINAL_TRY),
                locked: flag(CKF_USER_PIN_LOCKED),
                to_be_changed: flag(CKF_USER_PIN_TO_BE_CHANGED),
            },
            so_pin: PinStatus {
                count_low: flag(CKF_SO_PIN_COUNT_LOW),
                final_try: flag(CKF_SO_PIN_FINAL_TRY),
                locked: flag(CKF_SO_PIN_LOCKED),
                to_be_changed: flag(CKF_SO_PIN_TO_BE_CHANGED),
            },
            pin_min_len: info.ulMinPinLen as usize,
            pin_max_len: info.ulMaxPinLen as usize,
            sessions: count(info.ulSessionCount),
            max_sessions: limit(info.ulMaxSessionCount),
        }
    }
}

impl SlotDescription {
    pub(crate) fn read(access: &Access, slot: Slot) -> Result<Self> {
        let info = access
            .pkcs11()
            .get_slot_info(slot)
            .map_err(Error::module_call)?;
        // A token that cannot describe itself (SoftHSM2 after its storage vanished) is shown
        // with the error rather than failing the whole listing.
        let (token, token_error) = if info.token_present() {
            match access.token_info(slot) {
                Ok(t) => (Some(TokenDescription::from_raw(&t)), None),
                Err(e) => (None, Some(Error::module_call(e).to_string())),
            }
        } else {
            (None, None)
        };
        Ok(SlotDescription {
            slot: slot.id(),
            description: info.slot_description().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            removable: info.removable_device(),
            hardware: info.hardware_slot(),
            token,
            token_error,
        })
    }
}

/// Finds the slot a selector names. Labels must match exactly one initialized token.
pub(crate) fn find(access: &Access, selector: &TokenSelector) -> Result<(Slot, SlotDescription)> {
    let slots = access
        .pkcs11()
        .get_all_slots()
        .map_err(Error::module_call)?;
    match selector {
        TokenSelector::Slot(id) => {
            let slot = slots
                .iter()
                .find(|s| s.id() == *id)
                .copied()
                .ok_or_else(|| Error::SlotNotFound {
                    slot: *id,
                    available: slots.iter().map(|s| s.id().to_string()).collect(),
                })?;
            let description = SlotDescription::read(access, slot)?;
            if description.token.is_none() {
                return Err(Error::NoTokenInSlot { slot: *id });
            }
            Ok((slot, description))
        }
        TokenSelector::Label(label) => {
            let mut found = Vec::new();
            let mut available = Vec::new();
            let mut unreadable = Vec::new();
            for slot in slots {
                let description = SlotDescription::read(access, slot)?;
                if description.token_error.is_some() {
                    unreadable.push(slot.id());
                }
                if let Some(token) = &description.token {
                    if !token.initialized {
                        continue;
                    }
                    if token.label == *label {
                        found.push((slot, description));
                    } else {
                        available.push(format!("'{}'", token.label));
                    }
                }
            }
            match found.len() {
                0 => Err(Error::TokenNotFound {
                    label: label.clone(),
                    available,
                    unreadable,
                }),
                1 => Ok(found.remove(0)),
                _ => Err(Error::TokenAmbiguous {
                    label: label.clone(),
                    slots: found.iter().map(|(s, _)| s.id()).collect(),
                }),
            }
        }
    }
}

impl SlotDescription {
    /// The token's label, or an empty string for an empty slot.
    pub fn token_label(&self) -> &str {
        self.token.as_ref().map(|t| t.label.as_str()).unwrap_or("")
    }
}
