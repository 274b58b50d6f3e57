//! Times as Docker prints and takes them: RFC 3339 in UTC, with nine fractional digits for log
//! timestamps (`2014-09-16T06:17:46.000000000Z`, aligned), and the forms `--since` accepts.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `ms` since the epoch as Docker's log timestamps: UTC, nine fractional digits.
pub fn rfc3339_nano(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}000000Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        milli
    )
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses `2024-05-01`, `2024-05-01T10:00:00`, with a fraction (`.5`, `.123456789`) and a zone
/// (`Z`, `+02:00`, `-0700`) or none (UTC); a space may stand for the `T`. Returns ms since the
/// epoch, or `None` when it is not such a time.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y = digits(parts.next()?, 4)?;
    let mo = digits(parts.next()?, 2)?;
    let d = digits(parts.next()?, 2)?;
    if parts.next().is_some() || !(1..=12).contains(&mo) || d == 0 || d > days_in(y, mo) {
        return None;
    }
    let day = days_from_civil(i64::from(y), mo, d);
    let Some(rest) = rest else {
        return Some(day * 86_400_000);
    };
    // The zone: Z, or a sign and hh:mm / hhmm.
    let (clock, offset_min) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (c, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let z = z[1..].replace(':', "");
        let hh = digits(z.get(..2)?, 2)?;
        let mm = digits(z.get(2..)?, 2)?;
        if hh > 23 || mm > 59 {
            return None;
        }
        (c, sign * i64::from(hh * 60 + mm))
    } else {
        (rest, 0)
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((h, f)) => (h, Some(f)),
        None => (clock, None),
    };
    let mut hms = hms.split(':');
    let h = digits(hms.next()?, 2)?;
    let mi = digits(hms.next()?, 2)?;
    let sec = match hms.next() {
        Some(x) => digits(x, 2)?,
        None => 0,
    };
    if hms.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let milli = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<9}");
            i64::from(padded[..3].parse::<u32>().ok()?)
        }
        Some(_) => return None,
    };
    let secs = day * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset_min * 60;
    Some(secs * 1000 + milli)
}

fn days_in(y: u32, m: u32) -> u32 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_docker() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nano(1_410_848_266_123),
            "2014-09-16T06:17:46.123000000Z"
        );
        assert_eq!(
            rfc3339_nano(1_709_208_000_000),
            "2024-02-29T12:00:00.000000000Z",
            "a leap day"
        );
    }

    #[test]
    fn parses_what_docker_takes() {
        let t = 1_410_848_266_000;
        for s in [
            "2014-09-16T06:17:46Z",
            "2014-09-16T06:17:46",
            "2014-09-16 06:17:46",
            "2014-09-16T08:17:46+02:00",
            "2014-09-16T01:17:46-0500",
            "2014-09-16t06:17:46z",
        ] {
            assert_eq!(parse_rfc3339(s), Some(t), "{s}");
        }
        assert_eq!(parse_rfc3339("2014-09-16T06:17:46.5Z"), Some(t + 500));
        assert_eq!(
            parse_rfc3339("2014-09-16T06:17:46.123456789Z"),
            Some(t + 123)
        );
        assert_eq!(parse_rfc3339("2014-09-16T06:17Z"), Some(t - 46_000));
        assert_eq!(
            parse_rfc3339("2014-09-16"),
            Some(t - (6 * 3600 + 17 * 60 + 46) * 1000)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-02-29"), Some(1_709_164_800_000));
        for bad in [
            "yesterday",
            "",
            "2014-13-01",
            "2023-02-29",
            "2014-09-16T25:00:00Z",
            "2014-09-16T06:17:46.Z",
            "2014-9-16",
            "2014-09-16T06:17:46+2",
            "14-09-16",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        // Round trip.
        for ms in [0, 1, 999, 86_399_999, 951_782_400_000, 4_102_444_800_123] {
            assert_eq!(parse_rfc3339(&rfc3339_nano(ms)), Some(ms));
        }
    }
}
