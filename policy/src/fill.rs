//! Fill-in values: what a template's field accepts, checked per document (per row of a batch
//! job) before anything is sealed. Each refusal has a stable code for the job's report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::template::{FieldKind, Template};

/// A text value is at most this many characters.
pub const MAX_TEXT: usize = 500;

/// Why a value does not fit its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldError {
    /// A required field is empty or missing.
    Required,
    TooLong,
    /// Control characters (other than none) are not text.
    NotText,
    NotANumber,
    NotADate,
    NotAPhone,
    NotAnIdNumber,
}

impl FieldError {
    pub fn code(self) -> &'static str {
        match self {
            FieldError::Required => "field_required",
            FieldError::TooLong => "field_too_long",
            FieldError::NotText => "invalid_text",
            FieldError::NotANumber => "invalid_number",
            FieldError::NotADate => "invalid_date",
            FieldError::NotAPhone => "invalid_phone",
            FieldError::NotAnIdNumber => "invalid_id_number",
        }
    }

    pub fn explain(self) -> &'static str {
        match self {
            FieldError::Required => "the field is required and empty",
            FieldError::TooLong => "the value is longer than 500 characters",
            FieldError::NotText => "the value holds control characters",
            FieldError::NotANumber => "not a number (digits, an optional sign and decimal point)",
            FieldError::NotADate => "not a date (YYYY-MM-DD or YYYY/MM/DD, a real calendar day)",
            FieldError::NotAPhone => {
                "not a phone number (a mainland mobile number of 11 digits, optionally after +86, or an area code and number such as 010-12345678)"
            }
            FieldError::NotAnIdNumber => {
                "not a resident identity card number (18 characters: 17 digits with a valid birth date, then the check character 0-9 or X)"
            }
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.explain())
    }
}

impl FieldKind {
    /// Checks `value` (trimmed) against the kind. An empty value is the caller's to judge
    /// (required or not).
    pub fn check(self, value: &str) -> Result<(), FieldError> {
        let v = value.trim();
        if v.chars().count() > MAX_TEXT {
            return Err(FieldError::TooLong);
        }
        let ok = match self {
            FieldKind::Text => {
                if v.chars().any(char::is_control) {
                    return Err(FieldError::NotText);
                }
                true
            }
            FieldKind::Number => is_number(v),
            FieldKind::Date => is_date(v),
            FieldKind::Phone => is_phone(v),
            FieldKind::IdNumber => is_id_number(v),
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                FieldKind::Text => FieldError::NotText,
                FieldKind::Number => FieldError::NotANumber,
                FieldKind::Date => FieldError::NotADate,
                FieldKind::Phone => FieldError::NotAPhone,
                FieldKind::IdNumber => FieldError::NotAnIdNumber,
            })
        }
    }
}

fn is_number(v: &str) -> bool {
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    v.len() <= 40
        && !int.is_empty()
        && all_digits(int)
        && all_digits(frac)
        && (!digits.contains('.') || !frac.is_empty())
}

/// A real calendar day, YYYY-MM-DD or YYYY/MM/DD.
fn is_date(v: &str) -> bool {
    let parts: Vec<&str> = v.split(['-', '/']).collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    let sep_ok = v.matches('-').count() == 2 || v.matches('/').count() == 2;
    match (y.parse::<i64>(), m.parse::<i64>(), d.parse::<i64>()) {
        (Ok(y), Ok(m), Ok(d)) if sep_ok && y.to_string().len() == 4 => valid_day(y, m, d),
        _ => false,
    }
}

fn valid_day(y: i64, m: i64, d: i64) -> bool {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// A mainland mobile number (1[3-9] and 9 digits, optionally after +86 or 86), or a landline
/// with its area code (0 and 2–3 digits, an optional hyphen, 7–8 digits).
fn is_phone(v: &str) -> bool {
    // Byte positions below are character positions only in ASCII.
    if !v.is_ascii() {
        return false;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mobile = v
        .strip_prefix("+86")
        .or_else(|| v.strip_prefix("86").filter(|r| r.len() == 11))
        .unwrap_or(v);
    if mobile.len() == 11
        && digits(mobile)
        && mobile.starts_with('1')
        && (b'3'..=b'9').contains(&mobile.as_bytes()[1])
    {
        return true;
    }
    let (area, number) = match v.split_once('-') {
        Some(parts) => parts,
        // Without a hyphen: a 3- or 4-digit area code is ambiguous; take the common forms.
        None if v.len() == 11 || v.len() == 12 => v.split_at(v.len() - 8),
        None => return false,
    };
    area.starts_with('0')
        && (3..=4).contains(&area.len())
        && (7..=8).contains(&number.len())
        && digits(area)
        && digits(number)
}

/// GB 11643: 17 digits (the 7th to 14th a real birth date), then the ISO 7064 MOD 11-2 check
/// character.
fn is_id_number(v: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = v.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(c, w)| u32::from(c - b'0') * w)
        .sum();
    let expected = CHECK[(sum % 11) as usize];
    let birth = |r: std::ops::Range<usize>| v[r].parse::<i64>().unwrap_or(0);
    b[17].to_ascii_uppercase() == expected && valid_day(birth(6..10), birth(10..12), birth(12..14))
}

/// What is wrong with one document's (row's) values for `template`, field by field; empty
/// when they all fit. `values` maps field names to values; a field missing from it is empty.
pub fn check_values<'a>(
    template: &'a Template,
    values: &BTreeMap<&str, &str>,
) -> Vec<(&'a str, FieldError)> {
    let mut wrong = Vec::new();
    for f in &template.fields {
        let v = values.get(f.name.as_str()).map_or("", |v| v.trim());
        if v.is_empty() {
            if f.required {
                wrong.push((f.name.as_str(), FieldError::Required));
            }
            continue;
        }
        if let Err(e) = f.kind.check(v) {
            wrong.push((f.name.as_str(), e));
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_takes_what_it_should_and_refuses_the_rest() {
        use FieldKind::*;
        let cases: &[(FieldKind, &str, bool)] = &[
            (Text, "张三", true),
            (Text, "a\u{7}b", false),
            (Number, "12", true),
            (Number, "-3.50", true),
            (Number, "1.", false),
            (Number, "1e5", false),
            (Number, "一百", false),
            (Date, "2026-02-28", true),
            (Date, "2024/02/29", true),
            (Date, "2026-02-29", false),
            (Date, "2026-13-01", false),
            (Date, "2026-1-5", true),
            (Date, "26-01-05", false),
            (Date, "2026-01/05", false),
            (Phone, "13800138000", true),
            (Phone, "+8613800138000", true),
            (Phone, "8613800138000", true),
            (Phone, "12800138000", false),
            (Phone, "010-12345678", true),
            (Phone, "0755-1234567", true),
            (Phone, "01012345678", true),
            (Phone, "1380013800", false),
            (Phone, "中中中中", false),
            (Phone, "a中中中a", false),
            // GB 11643's own example, and its check character broken.
            (IdNumber, "11010519491231002X", true),
            (IdNumber, "11010519491231002x", true),
            (IdNumber, "110105194912310021", false),
            (IdNumber, "11010519491331002X", false),
            (IdNumber, "1101051949123100", false),
        ];
        for (kind, value, ok) in cases {
            assert_eq!(kind.check(value).is_ok(), *ok, "{kind:?} {value:?}");
        }
        assert_eq!(Text.check(&"字".repeat(501)), Err(FieldError::TooLong));
    }

    #[test]
    fn a_row_reports_every_field_that_does_not_fit() {
        let template: Template = serde_json::from_value(serde_json::json!({
            "id": "labour", "name": "劳动合同", "enabled": true, "allow_batch": true,
            "requires_contract_approval": false,
            "areas": [{"id": "a", "party": "甲方", "page": 1, "x": 1, "y": 1, "width": 40}],
            "fields": [
                {"name": "姓名", "kind": "text", "required": true},
                {"name": "身份证号", "kind": "id_number", "required": true},
                {"name": "电话", "kind": "phone"},
                {"name": "入职日期", "kind": "date"},
            ],
            "pdf_sha256": "0".repeat(64), "pdf_len": 10, "auto_sign": null, "created_by": "boss",
        }))
        .expect("a template");
        let row = BTreeMap::from([
            ("姓名", " "),
            ("身份证号", "110105194912310021"),
            ("电话", ""),
        ]);
        assert_eq!(
            check_values(&template, &row),
            vec![
                ("姓名", FieldError::Required),
                ("身份证号", FieldError::NotAnIdNumber)
            ]
        );
        let good = BTreeMap::from([
            ("姓名", "张三"),
            ("身份证号", "11010519491231002X"),
            ("入职日期", "2026-12-01"),
        ]);
        assert!(check_values(&template, &good).is_empty());
    }
}
