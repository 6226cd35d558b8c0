//! The UTC times persistctl writes: RFC 3339 in provenance (`persistctl:restored-at`) and in preseed's
//! reports, and a compact stamp in the names of datasets it moves aside. Whole seconds, always `Z`.

use std::time::SystemTime;

use jiff::Timestamp;

/// `time` to the second (truncated). A time before 1970 is 1970, as it always was here; one past
/// jiff's range (the year 9999) is the end of that range.
fn whole_seconds(time: SystemTime) -> Timestamp {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs).ok().and_then(|s| Timestamp::from_second(s).ok()).unwrap_or(Timestamp::MAX)
}

/// Formats a time as RFC 3339 UTC (`2024-05-01T12:00:00Z`).
#[must_use]
pub fn rfc3339_utc(time: SystemTime) -> String {
    whole_seconds(time).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A UTC time for dataset names: `20240501T120000Z`.
#[must_use]
pub fn utc_stamp(time: SystemTime) -> String {
    whole_seconds(time).strftime("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_format_as_rfc3339_utc() {
        let at = |secs| rfc3339_utc(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(at(1_714_564_800 + 3661), "2024-05-01T13:01:01Z");
        assert_eq!(crate::restic::parse_rfc3339(&at(1_709_164_799)), Some(1_709_164_799_000_000_000));
        // Truncated to the second, never rounded up; before 1970 is 1970.
        let late = SystemTime::UNIX_EPOCH + Duration::from_millis(1_714_564_800_999);
        assert_eq!(rfc3339_utc(late), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339_utc(SystemTime::UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn aside_names_carry_a_compact_utc_stamp() {
        assert_eq!(utc_stamp(SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800)), "20240501T120000Z");
    }
}
