//! The one clock ratchet reads, and the one way it shows a time to a person.
//!
//! Every rule that depends on time (R5's `rotation_period_ms`, R11's hour)
//! compares milliseconds since the Unix epoch taken from [`now_ms`]; nothing
//! else in ratchet calls `SystemTime::now`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Milliseconds since the Unix epoch as a short UTC timestamp for people:
/// `2026-11-23 16:06:40`. (humantime's RFC 3339 form, with a space for the
/// `T` and without the `Z`, which every human view of ratchet uses.)
pub(crate) fn format_ts(ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms);
    let rfc3339 = humantime::format_rfc3339_seconds(time).to_string();
    rfc3339.trim_end_matches('Z').replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_in_utc() {
        assert_eq!(format_ts(0), "1970-01-01 00:00:00");
        assert_eq!(format_ts(1_795_450_000_000), "2026-11-23 16:06:40");
        assert_eq!(format_ts(951_782_400_000), "2000-02-29 00:00:00");
        // Sub-second parts are dropped, not rounded.
        assert_eq!(format_ts(999), "1970-01-01 00:00:00");
    }

    #[test]
    fn now_is_after_this_code_was_written() {
        assert!(now_ms() > 1_795_450_000_000);
    }
}
