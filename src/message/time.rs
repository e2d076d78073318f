//! `created_at`: strict RFC 3339, as the file names and the ordering rely on it.
//!
//! Accepted: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` with a year
//! from 0001 to 9999 and an offset within ±23:59. Refused, although a lenient
//! parser takes them: year 0000 or more than four digits, offsets such as
//! `+25:00`, bracketed annotations (`[Europe/Paris]`), missing seconds.

use jiff::Timestamp;

use super::FieldError;

/// Now, in UTC with microseconds: `2026-11-24T10:30:00.123456+00:00`.
pub fn now_rfc3339() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

pub(super) fn parse_created_at(s: &str) -> Result<Timestamp, FieldError> {
    let refuse = |why: &str| {
        FieldError::new(
            "created_at",
            format!("{s:?} is not an RFC 3339 timestamp with offset ({why}; e.g. 2026-11-24T10:30:00.123456+00:00)"),
        )
    };
    check_shape(s).map_err(&refuse)?;
    s.parse::<Timestamp>()
        .map_err(|_| refuse("not a date and time that exists"))
}

/// The RFC 3339 grammar, checked byte by byte before any parsing.
fn check_shape(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(digits(0..4) && at(4, b"-") && digits(5..7) && at(7, b"-") && digits(8..10)) {
        return Err("the date must be YYYY-MM-DD");
    }
    if &b[0..4] == b"0000" {
        return Err("year 0000 is out of range");
    }
    if !(at(10, b"Tt")
        && digits(11..13)
        && at(13, b":")
        && digits(14..16)
        && at(16, b":")
        && digits(17..19))
    {
        return Err("the time must be THH:MM:SS");
    }
    let mut i = 19;
    if at(i, b".") {
        let n = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return Err("a fraction of a second has 1 to 9 digits");
        }
        i += 1 + n;
    }
    match &b[i..] {
        [b'Z' | b'z'] => Ok(()),
        [b'+' | b'-', h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) =>
        {
            let hours = (h1 - b'0') * 10 + (h2 - b'0');
            let minutes = (m1 - b'0') * 10 + (m2 - b'0');
            if hours > 23 || minutes > 59 {
                Err("the offset must be within -23:59 and +23:59")
            } else {
                Ok(())
            }
        }
        _ => Err("it must end in Z or an offset +HH:MM, and nothing after it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_rfc_3339_only() {
        for good in [
            "2026-11-24T10:30:00Z",
            "2026-11-24t10:30:00.123456789+23:59",
            "0001-01-01T00:00:00-23:59",
            "9998-12-31T23:59:59.5+00:00",
        ] {
            assert!(parse_created_at(good).is_ok(), "{good}");
        }
        for bad in [
            "0000-01-01T00:00:00Z",
            "2026-11-24T10:30:00+24:00",
            "2026-11-24T10:30:00+25:59",
            "2026-11-24T10:30:00+00:60",
            "2026-11-24T10:30:00Z[Europe/Paris]",
            "2026-11-24T10:30:00+01:00[Europe/Paris]",
            "+002026-11-24T10:30:00Z",
            "2026-11-24T10:30Z",
            "2026-11-24 10:30:00Z",
            "2026-11-24T10:30:00",
            "2026-02-30T10:30:00Z",
            "2026-11-24T10:30:00.Z",
            "2026-11-24T10:30:00+0100",
        ] {
            let err = parse_created_at(bad).unwrap_err();
            assert_eq!(err.field, "created_at", "{bad}");
        }
    }
}
