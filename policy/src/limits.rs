//! Limits on sealing: a seal's caps per day and per month, the hours it may be used
//! (weekdays and times in the enterprise's time zone), and the enterprise's contract quota.
//! Time is an input; the enterprise's zone is a fixed offset from UTC.

use serde::{Deserialize, Serialize};

use crate::DenyCode;

/// When a seal may be used: on these weekdays (1 = Monday … 7 = Sunday), from `from` to `to`
/// (`HH:MM`, local time, `to` excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub weekdays: Vec<u8>,
    pub from: String,
    pub to: String,
}

/// A seal's limits; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SealLimits {
    pub per_day: Option<u32>,
    pub per_month: Option<u32>,
    /// Empty: any time.
    pub windows: Vec<Window>,
}

/// `HH:MM` → minutes after midnight (24:00 allowed as an end).
fn minutes(text: &str) -> Result<u16, DenyCode> {
    let (h, m) = text.split_once(':').ok_or(DenyCode::InvalidLimits)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(DenyCode::InvalidLimits);
    }
    let (h, m): (u16, u16) = match (h.parse(), m.parse()) {
        (Ok(h), Ok(m)) => (h, m),
        _ => return Err(DenyCode::InvalidLimits),
    };
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(DenyCode::InvalidLimits);
    }
    Ok(h * 60 + m)
}

impl Window {
    fn span(&self) -> Result<(u16, u16), DenyCode> {
        let (from, to) = (minutes(&self.from)?, minutes(&self.to)?);
        if from >= to
            || self.weekdays.is_empty()
            || self.weekdays.iter().any(|d| !(1..=7).contains(d))
        {
            return Err(DenyCode::InvalidLimits);
        }
        Ok((from, to))
    }

    fn contains(&self, at: LocalTime) -> bool {
        self.span().is_ok_and(|(from, to)| {
            self.weekdays.contains(&at.weekday) && (from..to).contains(&at.minute)
        })
    }
}

impl SealLimits {
    pub fn validate(&self) -> Result<(), DenyCode> {
        if self.per_day == Some(0) || self.per_month == Some(0) || self.windows.len() > 28 {
            return Err(DenyCode::InvalidLimits);
        }
        for w in &self.windows {
            w.span()?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == SealLimits::default()
    }
}

/// Offsets from UTC run from −14:00 to +14:00.
pub fn check_offset(minutes: i32) -> Result<(), DenyCode> {
    if (-14 * 60..=14 * 60).contains(&minutes) {
        Ok(())
    } else {
        Err(DenyCode::InvalidLimits)
    }
}

/// An instant in the enterprise's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 1 = Monday … 7 = Sunday.
    pub weekday: u8,
    /// Minutes after local midnight.
    pub minute: u16,
    /// Local days since 1970-01-01 (the key of daily counts).
    pub day: i64,
    /// The first and last local day of this month.
    pub month: (i64, i64),
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A local day number as `YYYY-MM-DD`.
pub fn date_of_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `now` (unix seconds) in a zone `offset_minutes` from UTC.
pub fn local_time(now: i64, offset_minutes: i32) -> LocalTime {
    let local = now + i64::from(offset_minutes) * 60;
    let day = local.div_euclid(86_400);
    let minute = (local.rem_euclid(86_400) / 60) as u16;
    let weekday = ((day + 3).rem_euclid(7) + 1) as u8;
    let (y, m, _) = civil_from_days(day);
    let first = days_from_civil(y, m, 1);
    let next = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    LocalTime {
        weekday,
        minute,
        day,
        month: (first, next - 1),
    }
}

/// What has been used: the seal today and this month, and the enterprise's contracts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub seal_today: u32,
    pub seal_this_month: u32,
    pub contracts_used: u64,
    /// For a group member's seal: the contracts counted against the member's own quota.
    pub member_contracts_used: u64,
    /// The document was counted against the quota already (its further seals are free).
    pub document_counted: bool,
}

/// The seal may be used at `at` (inside one of its windows, if it has any).
pub fn check_window(limits: &SealLimits, at: LocalTime) -> Result<(), DenyCode> {
    if limits.windows.is_empty() || limits.windows.iter().any(|w| w.contains(at)) {
        Ok(())
    } else {
        Err(DenyCode::OutsideTimeWindow)
    }
}

/// One more signature stays within the seal's caps.
pub fn check_caps(limits: &SealLimits, usage: &Usage) -> Result<(), DenyCode> {
    if limits.per_day.is_some_and(|cap| usage.seal_today >= cap) {
        return Err(DenyCode::SealDailyCapReached);
    }
    if limits
        .per_month
        .is_some_and(|cap| usage.seal_this_month >= cap)
    {
        return Err(DenyCode::SealMonthlyCapReached);
    }
    Ok(())
}

/// One more contract stays within the quota (a document counts once, at its first seal).
pub fn check_quota(quota: Option<u64>, usage: &Usage) -> Result<(), DenyCode> {
    match quota {
        Some(q) if !usage.document_counted && usage.contracts_used >= q => {
            Err(DenyCode::ContractQuotaExhausted)
        }
        _ => Ok(()),
    }
}

/// Whether one more signature fits the seal's caps and the contract quota — the enterprise's
/// `quota`, or for a group member's seal the member's own, then (if it draws on it) the
/// parent's — and which pool a new contract counts against (None: no quota applies, or the
/// document was counted already). The store checks this again inside the record's
/// transaction.
pub fn admit(
    caps: &SealLimits,
    quota: Option<u64>,
    member: Option<&crate::group::GroupMember>,
    usage: &Usage,
) -> Result<Option<crate::group::QuotaCharge>, DenyCode> {
    use crate::group::{quota_charge, QuotaCharge};
    check_caps(caps, usage)?;
    if usage.document_counted {
        return Ok(None);
    }
    match member {
        None => check_quota(quota, usage).map(|()| quota.map(|_| QuotaCharge::Parent)),
        Some(m) if m.contract_quota.is_none() => Ok(None),
        Some(m) => {
            quota_charge(m, usage.member_contracts_used, quota, usage.contracts_used).map(Some)
        }
    }
}

/// The usage after one more signature (of a document not yet counted, if `new_document`).
pub fn consume(usage: Usage, new_document: bool) -> Usage {
    Usage {
        seal_today: usage.seal_today + 1,
        seal_this_month: usage.seal_this_month + 1,
        contracts_used: usage.contracts_used + u64::from(new_document && !usage.document_counted),
        document_counted: usage.document_counted || new_document,
        ..usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_knows_weekdays_months_and_offsets() {
        // 2026-12-01 00:30 UTC is 08:30 on Tuesday 1 December in Beijing (+08:00).
        let t = local_time(1_796_085_000, 480);
        assert_eq!((t.weekday, t.minute), (2, 8 * 60 + 30));
        assert_eq!(civil_from_days(t.day), (2026, 12, 1));
        assert_eq!(civil_from_days(t.month.0), (2026, 12, 1));
        assert_eq!(civil_from_days(t.month.1), (2026, 12, 31));
        // The same instant in UTC−05:00 is Monday evening, in November.
        let ny = local_time(1_796_085_000, -300);
        assert_eq!((ny.weekday, ny.minute), (1, 19 * 60 + 30));
        assert_eq!(civil_from_days(ny.month.1), (2026, 11, 30));
        // February of a leap year.
        let feb = local_time(1_709_251_200 - 3600, 0); // 2024-02-29 23:00 UTC
        assert_eq!(civil_from_days(feb.month.1), (2024, 2, 29));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(date_of_day(t.day), "2026-12-01");
    }

    #[test]
    fn windows_caps_and_quota() {
        let office = SealLimits {
            per_day: Some(2),
            per_month: Some(3),
            windows: vec![Window {
                weekdays: vec![1, 2, 3, 4, 5],
                from: "09:00".to_owned(),
                to: "18:00".to_owned(),
            }],
        };
        office.validate().expect("valid");
        let tuesday =
            |h: i64, m: i64| local_time(1_796_083_200 - 8 * 3600 + h * 3600 + m * 60, 480);
        assert_eq!(check_window(&office, tuesday(9, 0)), Ok(()));
        assert_eq!(check_window(&office, tuesday(17, 59)), Ok(()));
        assert_eq!(
            check_window(&office, tuesday(18, 0)),
            Err(DenyCode::OutsideTimeWindow)
        );
        assert_eq!(
            check_window(&office, tuesday(8, 59)),
            Err(DenyCode::OutsideTimeWindow)
        );
        let saturday = local_time(1_796_083_200 - 8 * 3600 + 4 * 86_400 + 10 * 3600, 480);
        assert_eq!(saturday.weekday, 6);
        assert_eq!(
            check_window(&office, saturday),
            Err(DenyCode::OutsideTimeWindow)
        );
        let mut u = Usage::default();
        assert_eq!(check_caps(&office, &u), Ok(()));
        u = consume(consume(u, true), false);
        assert_eq!(check_caps(&office, &u), Err(DenyCode::SealDailyCapReached));
        let tomorrow = Usage { seal_today: 0, ..u };
        assert_eq!(check_caps(&office, &tomorrow), Ok(()));
        let month = Usage {
            seal_today: 0,
            seal_this_month: 3,
            ..u
        };
        assert_eq!(
            check_caps(&office, &month),
            Err(DenyCode::SealMonthlyCapReached)
        );
        // The quota counts documents: a second seal on a counted one is free.
        let used = Usage {
            contracts_used: 5,
            ..Usage::default()
        };
        assert_eq!(
            check_quota(Some(5), &used),
            Err(DenyCode::ContractQuotaExhausted)
        );
        assert_eq!(
            check_quota(
                Some(5),
                &Usage {
                    document_counted: true,
                    ..used
                }
            ),
            Ok(())
        );
        assert_eq!(check_quota(None, &used), Ok(()));
        assert_eq!(consume(used, true).contracts_used, 6);
        assert_eq!(
            consume(
                Usage {
                    document_counted: true,
                    ..used
                },
                true
            )
            .contracts_used,
            5
        );
    }

    #[test]
    fn bad_limits_are_refused() {
        let w = |from: &str, to: &str, days: Vec<u8>| SealLimits {
            windows: vec![Window {
                weekdays: days,
                from: from.to_owned(),
                to: to.to_owned(),
            }],
            ..SealLimits::default()
        };
        for bad in [
            w("18:00", "09:00", vec![1]),
            w("9:00", "18:00", vec![1]),
            w("09:00", "24:30", vec![1]),
            w("09:00", "18:00", vec![0]),
            w("09:00", "18:00", vec![]),
            SealLimits {
                per_day: Some(0),
                ..SealLimits::default()
            },
        ] {
            assert_eq!(bad.validate(), Err(DenyCode::InvalidLimits), "{bad:?}");
        }
        assert!(w("00:00", "24:00", vec![7]).validate().is_ok());
        assert_eq!(check_offset(15 * 60), Err(DenyCode::InvalidLimits));
        assert_eq!(check_offset(-300), Ok(()));
    }
}
