//! Timestamps in the two wire forms Kubernetes uses (`Time`: RFC 3339 seconds; `MicroTime`:
//! RFC 3339 microseconds), parsing them back, and the human "age" column (`5m`, `3h2m`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// `2024-05-01T12:00:00Z`
pub fn format_time(micros: i64) -> String {
    let (date, secs) = split(micros);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2024-05-01T12:00:00.123456Z`
pub fn format_micro_time(micros: i64) -> String {
    let (date, secs) = split(micros);
    let frac = micros.rem_euclid(1_000_000);
    format!(
        "{date}T{:02}:{:02}:{:02}.{frac:06}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

pub fn now_time() -> String {
    format_time(now_micros())
}

pub fn now_micro_time() -> String {
    format_micro_time(now_micros())
}

fn split(micros: i64) -> (String, i64) {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (format!("{y:04}-{m:02}-{d:02}"), secs.rem_euclid(86_400))
}

// Howard Hinnant's days-from-civil algorithm and its inverse.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses RFC 3339 (`Z` or `+hh:mm` offsets, optional fraction) into microseconds since the
/// epoch. Returns `None` for anything malformed.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_micros = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let mut f = String::from(&r[..digits.min(6)]);
        while f.len() < 6 {
            f.push('0');
        }
        frac_micros = f.parse().ok()?;
        rest = &r[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.get(3..4) == Some(":") =>
        {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let v = oh * 3600 + om * 60;
            if rest.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    Some(secs * 1_000_000 + frac_micros)
}

/// The age column as kubectl prints it (`HumanDuration`): `45s`, `5m10s`, `3h`, `2d5h`, `400d`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs() as i64;
    if secs < 0 {
        return "<invalid>".into();
    }
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of an RFC 3339 timestamp relative to now, or `<unknown>`.
pub fn age_of(timestamp: Option<&str>) -> String {
    match timestamp.and_then(parse_rfc3339) {
        Some(t) => {
            let now = now_micros();
            if t > now + 1_000_000 {
                return "<invalid>".into();
            }
            human_duration(Duration::from_micros((now - t).max(0) as u64))
        }
        None => "<unknown>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        // 2024-02-29T23:59:58.000001Z
        let t = (days_from_civil(2024, 2, 29) * 86_400 + 86_398) * 1_000_000 + 1;
        assert_eq!(format_micro_time(t), "2024-02-29T23:59:58.000001Z");
        assert_eq!(format_time(t), "2024-02-29T23:59:58Z");
    }

    #[test]
    fn parse_round_trips_and_handles_offsets() {
        let t = parse_rfc3339("2024-02-29T23:59:58.000001Z").unwrap();
        assert_eq!(format_micro_time(t), "2024-02-29T23:59:58.000001Z");
        assert_eq!(
            parse_rfc3339("2024-03-01T01:00:00+01:00"),
            parse_rfc3339("2024-03-01T00:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2024-03-01T00:00:00.5Z").unwrap() % 1_000_000,
            500_000
        );
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            "2024",
            "2024-13-01T00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "２０２４-01-01T00:00:00Z",
            "2024-01-01T0a:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn human_durations_match_kubectl() {
        let s = |n| human_duration(Duration::from_secs(n));
        assert_eq!(s(5), "5s");
        assert_eq!(s(119), "119s");
        assert_eq!(s(310), "5m10s");
        assert_eq!(s(600), "10m");
        assert_eq!(s(3 * 3600 + 120), "3h2m");
        assert_eq!(s(10 * 3600), "10h");
        assert_eq!(s(3 * 86_400 + 3600), "3d1h");
        assert_eq!(s(30 * 86_400), "30d");
    }
}
