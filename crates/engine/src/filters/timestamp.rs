//! moby's `GetTimestamp` and `ParseTimestamps` (`api/types/time`), which the `until` filters
//! go through: the CLI sends `--filter until=24h` as typed, and the daemon reads it.

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveTime, TimeZone};

use super::invalid;
use crate::Result;

const NANOS: i64 = 1_000_000_000;

/// `value` in nanoseconds since the epoch: a Go duration back from `now` (`90m`, `1h30m`,
/// `1.5h`; whole seconds, as Docker counts it), a date or time in RFC 3339's shapes
/// (`2024-05-01`, `2024-05-01T10`, `2024-05-01T10:00:00.5`, each with `Z` or `+02:00`, in
/// `now`'s zone without one), or unix seconds with an optional fraction (`1700000000.5`).
pub fn parse(value: &str, now: DateTime<Local>) -> Result<i64> {
    if value != "0" {
        if let Some(d) = go_duration(value) {
            let t = now.timestamp_nanos_opt().unwrap_or(0).saturating_sub(d);
            return Ok(t.div_euclid(NANOS) * NANOS);
        }
    }
    if let Some(t) = date_time(value, *now.offset()) {
        return Ok(t);
    }
    if value.contains('-') {
        return Err(invalid(format!(
            "parsing time {value:?}: not a date or time in RFC 3339 form"
        )));
    }
    unix(value).ok_or_else(|| {
        invalid(format!(
            "failed to parse value as time or duration: {value:?}"
        ))
    })
}

/// Go's `time.ParseDuration`, in nanoseconds: `[-+]` then numbers (with an optional
/// fraction) each followed by a unit (ns, us, µs, ms, s, m, h); `0` alone is zero.
fn go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        let unit: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let digits = &frac[..frac.len().min(18)];
        let part = if digits.is_empty() {
            0
        } else {
            digits.parse::<i128>().ok()? * unit / 10i128.pow(digits.len() as u32)
        };
        total = total.checked_add(whole.checked_mul(unit)?.checked_add(part)?)?;
        if total > i64::MAX as i128 {
            return None;
        }
        rest = next;
    }
    let total = total as i64;
    Some(if neg { -total } else { total })
}

/// An RFC 3339-like date or time (Go's layouts `2006-01-02[Z07:00]` and
/// `2006-01-02T15[:04[:05[.999999999]]][Z07:00]`), in `local` without a zone.
fn date_time(value: &str, local: FixedOffset) -> Option<i64> {
    let date = NaiveDate::parse_from_str(value.get(..10)?, "%Y-%m-%d").ok()?;
    let rest = &value[10..];
    let (time, zone) = match rest.strip_prefix('T') {
        Some(t) => match t.strip_suffix(['Z', 'z']) {
            Some(t) => (t, Some(FixedOffset::east_opt(0)?)),
            None => match t.find(['+', '-']) {
                Some(i) => (&t[..i], Some(offset(&t[i..])?)),
                None => (t, None),
            },
        },
        None if rest.is_empty() => ("", None),
        None if rest.eq_ignore_ascii_case("z") => ("", Some(FixedOffset::east_opt(0)?)),
        None => ("", Some(offset(rest)?)),
    };
    let time = if time.is_empty() {
        if rest.starts_with('T') {
            return None;
        }
        NaiveTime::MIN
    } else {
        clock(time)?
    };
    let at = date.and_time(time);
    let t = zone.unwrap_or(local).from_local_datetime(&at).single()?;
    t.timestamp_nanos_opt()
}

/// `15`, `15:04`, `15:04:05` or `15:04:05.999999999`.
fn clock(s: &str) -> Option<NaiveTime> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let num = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u32>().ok());
    if !frac.is_empty() && (parts.len() != 3 || frac.len() > 9) {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    NaiveTime::from_hms_nano_opt(num(0)?, num(1)?, num(2)?, nanos)
}

/// `+07:00` or `-07:00`.
fn offset(s: &str) -> Option<FixedOffset> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = s[1..].split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
}

/// Unix seconds with an optional fraction (moby's `ParseTimestamps`).
fn unix(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?
    };
    secs.checked_mul(NANOS)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Local> {
        // 2024-01-02T03:04:05.6Z
        Local.timestamp_opt(1_704_164_645, 600_000_000).unwrap()
    }

    #[test]
    fn go_durations_count_back_from_now_in_whole_seconds() {
        assert_eq!(go_duration("1h30m"), Some(5_400 * NANOS));
        assert_eq!(go_duration("1.5h"), Some(5_400 * NANOS));
        assert_eq!(go_duration("-2s"), Some(-2 * NANOS));
        assert_eq!(go_duration("300ms"), Some(300_000_000));
        assert_eq!(go_duration("10"), None, "a number alone is unix seconds");
        assert_eq!(go_duration("h"), None);
        assert_eq!(go_duration("1d"), None);
        assert_eq!(
            parse("10m", now()).unwrap(),
            (1_704_164_645 - 600) * NANOS,
            "{}",
            "the fraction of now is dropped, as Go's Unix() does"
        );
    }

    #[test]
    fn dates_times_and_unix_seconds() {
        let t = |s: &str| parse(s, now()).unwrap() / NANOS;
        assert_eq!(t("2024-01-02T03:04:05Z"), 1_704_164_645);
        assert_eq!(t("2024-01-02T05:04:05+02:00"), 1_704_164_645);
        assert_eq!(t("2024-01-02T03:04Z"), 1_704_164_640);
        assert_eq!(t("2024-01-02T03Z"), 1_704_164_400);
        assert_eq!(t("2024-01-02Z"), 1_704_153_600);
        assert_eq!(t("2024-01-02-01:00"), 1_704_157_200);
        assert_eq!(
            parse("2024-01-02T03:04:05.25Z", now()).unwrap() % NANOS,
            250_000_000
        );
        let local = now().offset().local_minus_utc() as i64;
        assert_eq!(t("2024-01-02"), 1_704_153_600 - local);
        assert_eq!(t("1700000000"), 1_700_000_000);
        assert_eq!(parse("0", now()).unwrap(), 0);
        assert_eq!(parse("10.5", now()).unwrap(), 10_500_000_000);
        assert!(parse("2024-13-01", now()).is_err());
        assert!(parse("yesterday", now()).is_err());
        assert!(parse("", now()).is_err());
    }
}
