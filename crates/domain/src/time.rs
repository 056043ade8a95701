//! RFC 3339 timestamps to and from epoch milliseconds, the one time representation catalogd
//! stores. Hand-written (days-from-civil arithmetic) so the domain crate needs no date library.

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::fmt::Write as _;

/// A timestamp that is not RFC 3339 (`2026-01-31T12:00:00Z`, optional fraction, `Z` or `±hh:mm`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an RFC 3339 timestamp such as 2026-01-31T12:00:00Z")]
pub struct BadTimestamp(pub String);

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision:
/// `2026-01-31T12:00:00.000Z`.
///
/// ```
/// use catalog_domain::time::format_rfc3339;
/// assert_eq!(format_rfc3339(1_769_860_800_000), "2026-01-31T12:00:00.000Z");
/// ```
pub fn format_rfc3339(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    let (secs, millis) = (ms_of_day / 1_000, ms_of_day % 1_000);
    let mut out = String::with_capacity(24);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    );
    out
}

/// Formats epoch milliseconds as Klaviyo does: RFC 3339 with a `+00:00` offset.
///
/// ```
/// use catalog_domain::time::format_rfc3339_offset;
/// assert_eq!(format_rfc3339_offset(1_769_860_800_000), "2026-01-31T12:00:00.000+00:00");
/// ```
pub fn format_rfc3339_offset(ms: i64) -> String {
    let mut text = format_rfc3339(ms);
    text.pop();
    text.push_str("+00:00");
    text
}

/// Parses an RFC 3339 timestamp into epoch milliseconds (sub-millisecond digits are truncated).
///
/// ```
/// use catalog_domain::time::parse_rfc3339;
/// assert_eq!(parse_rfc3339("2026-01-31T12:00:00Z"), Ok(1_769_860_800_000));
/// assert_eq!(parse_rfc3339("2026-01-31T13:00:00.5+01:00"), Ok(1_769_860_800_500));
/// assert!(parse_rfc3339("2026-02-30T00:00:00Z").is_err());
/// ```
pub fn parse_rfc3339(text: &str) -> Result<i64, BadTimestamp> {
    parse(text.as_bytes()).ok_or_else(|| BadTimestamp(text.to_owned()))
}

fn number(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0i64, |acc, b| acc.checked_mul(10)?.checked_add(i64::from(b - b'0')))
}

fn parse(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(&b[0..4])?, number(&b[5..7])?, number(&b[8..10])?);
    let (hour, minute, second) = (number(&b[11..13])?, number(&b[14..16])?, number(&b[17..19])?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let max_day = *month_days.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    if day < 1 || day > max_day || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some((b'.', fraction)) = rest.split_first() {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, digit) in fraction[..digits].iter().take(3).enumerate() {
            millis += i64::from(digit - b'0') * [100, 10, 1][i];
        }
        rest = &fraction[digits..];
    }
    let offset_ms = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (number(&[*h1, *h2])?, number(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 60 + minutes) * 60_000;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1_000 + millis - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(1_623_912_955_277), "2021-06-17T06:55:55.277Z");
        assert_eq!(format_rfc3339_offset(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("2021-06-17T06:55:55.277Z"), Ok(1_623_912_955_277));
        assert_eq!(parse_rfc3339("2021-06-17T08:55:55.277+02:00"), Ok(1_623_912_955_277));
        assert_eq!(parse_rfc3339("2021-06-17T06:55:55Z"), Ok(1_623_912_955_000));
        assert_eq!(parse_rfc3339("2021-06-17T06:55:55.277999Z"), Ok(1_623_912_955_277));
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            "",
            "2021-06-17",
            "2021-02-30T00:00:00Z",
            "2021-06-17T24:00:00Z",
            "2021-06-17T06:55:55",
            "2021-06-17T06:55:55.Z",
            "x021-06-17T06:55:55Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad} should be rejected");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in -62_135_596_800_000i64..253_402_300_799_999i64) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Ok(ms));
        }
    }
}
