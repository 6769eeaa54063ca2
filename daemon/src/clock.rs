//! Wall-clock time, read in one place (policy takes it as an input).

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Now as RFC 3339 UTC with milliseconds (`2026-12-01T13:05:50.123Z`): audit times sort as text.
pub fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = seald_pades::time::rfc3339(now.as_secs() as i64);
    let base = seconds.strip_suffix('Z').unwrap_or(&seconds);
    format!("{base}.{:03}Z", now.subsec_millis())
}
