//! Dates as PDF writes them (`D:YYYYMMDDHHmmSS+HH'mm'`), without a time zone database: the
//! offset from UTC is given.

use std::time::{SystemTime, UNIX_EPOCH};

/// A moment and the UTC offset to show it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningTime {
    pub unix_seconds: i64,
    /// Minutes east of UTC (China: +480).
    pub utc_offset_minutes: i32,
}

impl SigningTime {
    pub fn now(utc_offset_minutes: i32) -> Self {
        let unix_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        SigningTime {
            unix_seconds,
            utc_offset_minutes,
        }
    }

    fn local(&self) -> (i64, u32, u32, u32, u32, u32) {
        let local = self.unix_seconds + i64::from(self.utc_offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
    }

    /// `D:20261124103000+08'00'`
    pub fn pdf_date(&self) -> String {
        let (y, mo, d, h, mi, s) = self.local();
        let off = self.utc_offset_minutes;
        let zone = if off == 0 {
            "Z".to_owned()
        } else {
            let sign = if off < 0 { '-' } else { '+' };
            format!("{sign}{:02}'{:02}'", off.abs() / 60, off.abs() % 60)
        };
        format!("D:{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}{zone}")
    }

    /// `2026-11-24`
    pub fn date(&self) -> String {
        let (y, mo, d, ..) = self.local();
        format!("{y:04}-{mo:02}-{d:02}")
    }
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds as RFC 3339 in UTC (`2026-11-24T02:30:00Z`).
pub fn rfc3339(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (UTC) → unix seconds; `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = text.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let time = time.split('.').next()?;
    let num = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let mut h = time.split(':');
    let (hh, mm, ss) = (num(h.next()?, 2)?, num(h.next()?, 2)?, num(h.next()?, 2)?);
    if d.next().is_some()
        || h.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 60
    {
        return None;
    }
    Some(days_from_civil(y, m as u32, day as u32) * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_dates_with_offsets() {
        // 2026-11-24T02:30:00Z
        let t = SigningTime {
            unix_seconds: days_from_civil(2026, 11, 24) * 86_400 + 2 * 3600 + 30 * 60,
            utc_offset_minutes: 480,
        };
        assert_eq!(t.pdf_date(), "D:20261124103000+08'00'");
        assert_eq!(t.date(), "2026-11-24");
        let utc = SigningTime {
            utc_offset_minutes: 0,
            ..t
        };
        assert_eq!(utc.pdf_date(), "D:20261124023000Z");
        let west = SigningTime {
            utc_offset_minutes: -330,
            ..t
        };
        assert_eq!(west.pdf_date(), "D:20261123210000-05'30'");
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1_000_000i64, -1, 0, 59, 60, 11_016, 20_781, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn rfc3339_round_trips() {
        for t in [0i64, 1_764_590_400, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-12-01T13:05:50.123Z"),
            parse_rfc3339("2026-12-01T13:05:50Z")
        );
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-12-01 00:00:00"), None);
    }
}
