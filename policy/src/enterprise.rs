//! The enterprise: its identity (name and unified social credit code) and its feature
//! switches.

use serde::{Deserialize, Serialize};

use crate::DenyCode;

/// The characters of a unified social credit code (GB 32100-2015): digits and capital
/// letters without I, O, Z, S and V. A character's value is its index here.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// A unified social credit code (统一社会信用代码): 18 characters whose last is a check
/// character over the first 17.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

/// Why a text is not a unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditCodeError {
    Length(usize),
    /// 1-based position of a character outside the code's alphabet.
    Character {
        position: usize,
        found: char,
    },
    /// Characters 3 to 8 are the administrative division code: digits.
    Division,
    CheckCharacter {
        expected: char,
        found: char,
    },
}

impl std::fmt::Display for CreditCodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CreditCodeError::Length(n) => {
                write!(f, "a unified social credit code has 18 characters, not {n}")
            }
            CreditCodeError::Character { position, found } => write!(
                f,
                "character {position} ('{found}') is not one of 0-9 and A-Y without I, O, S, V, Z"
            ),
            CreditCodeError::Division => {
                f.write_str("characters 3 to 8 (the administrative division) must be digits")
            }
            CreditCodeError::CheckCharacter { expected, found } => write!(
                f,
                "the check character is '{found}' but the first 17 characters give '{expected}'"
            ),
        }
    }
}

impl std::error::Error for CreditCodeError {}

impl CreditCode {
    pub fn parse(text: &str) -> Result<CreditCode, CreditCodeError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.len() != 18 {
            return Err(CreditCodeError::Length(chars.len()));
        }
        let mut values = [0u32; 18];
        for (i, &c) in chars.iter().enumerate() {
            let value = u8::try_from(c)
                .ok()
                .and_then(|b| ALPHABET.iter().position(|&a| a == b))
                .ok_or(CreditCodeError::Character {
                    position: i + 1,
                    found: c,
                })?;
            values[i] = value as u32;
        }
        if !chars[2..8].iter().all(char::is_ascii_digit) {
            return Err(CreditCodeError::Division);
        }
        let sum: u32 = WEIGHTS.iter().zip(&values).map(|(w, v)| w * v).sum();
        let check = (31 - sum % 31) % 31;
        let expected = ALPHABET[check as usize] as char;
        if chars[17] != expected {
            return Err(CreditCodeError::CheckCharacter {
                expected,
                found: chars[17],
            });
        }
        Ok(CreditCode(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CreditCode {
    type Error = CreditCodeError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        CreditCode::parse(&text)
    }
}

impl From<CreditCode> for String {
    fn from(code: CreditCode) -> String {
        code.0
    }
}

/// Switches an enterprise turns on or off (only the super administrator or the legal
/// representative: `admin::set_features`). Page seals and forced contract approval are
/// enforced by `decide`; auto-sign's rules come with auto-sign templates. A switch left out is
/// off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Features {
    pub auto_sign: bool,
    /// Page seals (骑缝章) stamped across the edges of every page.
    pub page_seal: bool,
    pub forced_contract_approval: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enterprise {
    pub id: String,
    pub name: String,
    pub credit_code: CreditCode,
    #[serde(default)]
    pub features: Features,
    /// The enterprise's time zone, as minutes east of UTC (time windows are local). Default
    /// +08:00 (China Standard Time, which has no daylight saving).
    #[serde(default = "china_standard_time")]
    pub utc_offset_minutes: i32,
    /// Contracts (documents) the enterprise may still have sealed in all: None is unlimited.
    #[serde(default)]
    pub contract_quota: Option<u64>,
}

fn china_standard_time() -> i32 {
    8 * 60
}

/// An id systems use (templates, signing areas, partners): 1 to 64 of A-Z, a-z, 0-9, '.',
/// '-' and '_'.
pub fn check_id(id: &str) -> Result<(), DenyCode> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(DenyCode::InvalidName)
    }
}

/// A name people type: 1 to 100 characters, no control characters, not only spaces.
pub fn check_name(name: &str) -> Result<(), DenyCode> {
    let n = name.chars().count();
    if n == 0 || n > 100 || name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(DenyCode::InvalidName);
    }
    Ok(())
}

impl Enterprise {
    pub fn new(
        id: &str,
        name: &str,
        credit_code: &str,
        features: Features,
    ) -> Result<Enterprise, DenyCode> {
        check_name(name)?;
        let credit_code =
            CreditCode::parse(credit_code).map_err(|_| DenyCode::InvalidCreditCode)?;
        Ok(Enterprise {
            id: id.to_owned(),
            name: name.to_owned(),
            credit_code,
            features,
            utc_offset_minutes: china_standard_time(),
            contract_quota: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_codes_validate() {
        for code in [
            "91350100M000100Y43",
            "91110000802100433B",
            "91330100716105852F",
        ] {
            assert_eq!(CreditCode::parse(code).expect("allowed").as_str(), code);
        }
    }

    #[test]
    fn each_defect_is_named() {
        assert_eq!(
            CreditCode::parse("91350100M000100Y4"),
            Err(CreditCodeError::Length(17))
        );
        assert_eq!(
            CreditCode::parse("91350100M000100Y44"),
            Err(CreditCodeError::CheckCharacter {
                expected: '3',
                found: '4'
            })
        );
        assert_eq!(
            CreditCode::parse("91350100M0001O0Y43"),
            Err(CreditCodeError::Character {
                position: 14,
                found: 'O'
            })
        );
        assert_eq!(
            CreditCode::parse("9135A100M000100Y43"),
            Err(CreditCodeError::Division)
        );
        // Lower case is not the code's alphabet.
        assert!(CreditCode::parse("91350100m000100Y43").is_err());
        // Multi-byte characters count as characters, not bytes.
        assert_eq!(
            CreditCode::parse("统一社会信用代码"),
            Err(CreditCodeError::Length(8))
        );
    }

    #[test]
    fn serde_rejects_a_bad_code() {
        let good: CreditCode = serde_json::from_str("\"91350100M000100Y43\"").expect("allowed");
        assert_eq!(good.as_str(), "91350100M000100Y43");
        assert!(serde_json::from_str::<CreditCode>("\"91350100M000100Y44\"").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("示例科技有限公司").is_ok());
        for bad in ["", "   ", "a\nb", &"长".repeat(101)] {
            assert_eq!(check_name(bad), Err(DenyCode::InvalidName), "{bad:?}");
        }
    }
}
