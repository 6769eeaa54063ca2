//! Slots and tokens as an administrator sees them, and finding a token by label or slot.

use std::fmt;

use cryptoki::context::Pkcs11;
use cryptoki::slot::{Limit, Slot, TokenInfo};
use serde::Serialize;

use crate::error::{Error, Result};

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
    /// `None` when no token is present.
    pub token: Option<TokenDescription>,
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
    pub(crate) fn from_info(info: &TokenInfo) -> Self {
        let limit = |l: Limit| match l {
            Limit::Max(n) => Some(n.to_string()),
            Limit::Unavailable => None,
            Limit::Infinite => Some("unlimited".to_owned()),
        };
        TokenDescription {
            label: info.label().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            model: info.model().trim_end().to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
            initialized: info.token_initialized(),
            login_required: info.login_required(),
            user_pin_initialized: info.user_pin_initialized(),
            write_protected: info.write_protected(),
            protected_authentication_path: info.protected_authentication_path(),
            user_pin: PinStatus {
                count_low: info.user_pin_count_low(),
                final_try: info.user_pin_final_try(),
                locked: info.user_pin_locked(),
                to_be_changed: info.user_pin_to_be_changed(),
            },
            so_pin: PinStatus {
                count_low: info.so_pin_count_low(),
                final_try: info.so_pin_final_try(),
                locked: info.so_pin_locked(),
                to_be_changed: info.so_pin_to_be_changed(),
            },
            pin_min_len: info.min_pin_length(),
            pin_max_len: info.max_pin_length(),
            sessions: info.session_count(),
            max_sessions: limit(info.max_session_count()),
        }
    }
}

impl SlotDescription {
    pub(crate) fn read(pkcs11: &Pkcs11, slot: Slot) -> Result<Self> {
        let info = pkcs11.get_slot_info(slot).map_err(Error::module_call)?;
        let token = if info.token_present() {
            // A token that cannot describe itself (SoftHSM2 after its storage vanished) is
            // shown as absent rather than failing the whole listing.
            pkcs11
                .get_token_info(slot)
                .ok()
                .map(|t| TokenDescription::from_info(&t))
        } else {
            None
        };
        Ok(SlotDescription {
            slot: slot.id(),
            description: info.slot_description().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            removable: info.removable_device(),
            hardware: info.hardware_slot(),
            token,
        })
    }
}

/// Finds the slot a selector names. Labels must match exactly one initialized token.
pub(crate) fn find(pkcs11: &Pkcs11, selector: &TokenSelector) -> Result<(Slot, SlotDescription)> {
    let slots = pkcs11.get_all_slots().map_err(Error::module_call)?;
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
            let description = SlotDescription::read(pkcs11, slot)?;
            if description.token.is_none() {
                return Err(Error::NoTokenInSlot { slot: *id });
            }
            Ok((slot, description))
        }
        TokenSelector::Label(label) => {
            let mut found = Vec::new();
            let mut available = Vec::new();
            for slot in slots {
                let description = SlotDescription::read(pkcs11, slot)?;
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
