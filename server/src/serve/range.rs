//! The `Range` request header (RFC 9110 §14.2) against one representation of known length.
//!
//! Owns [`parse_range`], a pure function (fuzzed). It answers one byte range: a header in
//! any other unit (`items=0-4`) is ignored, as §14.2 requires ("MUST ignore a range unit
//! it does not understand"). It refuses, as unsatisfiable (416), a malformed byte-range
//! set (no `=`, not digits, last before first, empty), several ranges (there are no
//! multipart answers; §14.2 lets a server reject them), a range that starts at or past the
//! end, and a suffix of zero bytes. A last position past the end is clamped to it; a
//! suffix longer than the file selects all of it; empty list elements are skipped
//! (§5.6.1). Numbers too large for `u64` saturate (so they are past any end) instead of
//! failing.

/// What to send for a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole representation (200): the header is ignored.
    Whole,
    /// Bytes `start..=end` (206); `start <= end < len`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// The answer to the `Range` header value `header` for a representation of `len` bytes.
pub fn parse_range(header: &[u8], len: u64) -> RangeAnswer {
    let header = trim_ows(header);
    let Some(eq) = header.iter().position(|&b| b == b'=') else {
        return RangeAnswer::Unsatisfiable;
    };
    if !header[..eq].eq_ignore_ascii_case(b"bytes") {
        return RangeAnswer::Whole;
    }
    let mut specs = header[eq + 1..]
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty());
    let Some(spec) = specs.next() else {
        return RangeAnswer::Unsatisfiable;
    };
    let Some(range) = parse_spec(spec) else {
        return RangeAnswer::Unsatisfiable;
    };
    if specs.next().is_some() {
        return RangeAnswer::Unsatisfiable;
    }
    match range {
        Spec::From { first, last } => {
            if first >= len {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial {
                start: first,
                end: last.map_or(len - 1, |l| l.min(len - 1)),
            }
        }
        Spec::Suffix(0) => RangeAnswer::Unsatisfiable,
        // The only satisfiable range of an empty representation; there is no byte to
        // name, so it is sent whole (empty).
        Spec::Suffix(_) if len == 0 => RangeAnswer::Whole,
        Spec::Suffix(n) => RangeAnswer::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        },
    }
}

enum Spec {
    From { first: u64, last: Option<u64> },
    Suffix(u64),
}

/// `first-pos "-" [ last-pos ]` or `"-" suffix-length`; `None` when malformed.
fn parse_spec(spec: &[u8]) -> Option<Spec> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        let l = digits(last)?;
        if l < first {
            return None;
        }
        Some(l)
    };
    Some(Spec::From { first, last })
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::{Partial, Unsatisfiable, Whole};
    use super::*;

    fn p(h: &str, len: u64) -> RangeAnswer {
        parse_range(h.as_bytes(), len)
    }

    #[test]
    fn single_byte_ranges() {
        assert_eq!(p("bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(
            p("bytes=100-199", 1000),
            Partial {
                start: 100,
                end: 199
            }
        );
        assert_eq!(p("bytes=10-", 100), Partial { start: 10, end: 99 });
        assert_eq!(p("bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(p("bytes=0-0", 1), Partial { start: 0, end: 0 });
        assert_eq!(p("bytes=99-99", 100), Partial { start: 99, end: 99 });
        // Case-insensitive unit, optional whitespace, leading zeros (1*DIGIT).
        assert_eq!(p(" Bytes = 5-6 ", 100), Whole); // "Bytes " is not the token
        assert_eq!(p("BYTES=5-6", 100), Partial { start: 5, end: 6 });
        assert_eq!(p("bytes= 5-6 ", 100), Partial { start: 5, end: 6 });
        assert_eq!(p("bytes=005-006", 100), Partial { start: 5, end: 6 });
    }

    #[test]
    fn clamps_the_end_and_takes_a_long_suffix_whole() {
        assert_eq!(p("bytes=90-200", 100), Partial { start: 90, end: 99 });
        assert_eq!(p("bytes=-500", 100), Partial { start: 0, end: 99 });
        assert_eq!(
            p("bytes=0-99999999999999999999999", 100),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(
            p("bytes=-99999999999999999999999", 7),
            Partial { start: 0, end: 6 }
        );
        assert_eq!(
            p("bytes=0-18446744073709551615", u64::MAX),
            Partial {
                start: 0,
                end: u64::MAX - 1
            }
        );
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(p("items=0-4", 100), Whole);
        assert_eq!(p("lines=1-2", 100), Whole);
        assert_eq!(p("none=", 100), Whole);
        assert_eq!(p("items=a-b,c", 100), Whole);
        // Empty list elements are allowed (RFC 9110 §5.6.1).
        assert_eq!(p("bytes=,0-1,", 100), Partial { start: 0, end: 1 });
    }

    #[test]
    fn malformed_or_outside_ranges_are_unsatisfiable() {
        for h in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=-0",
            "bytes=5-4",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=--1",
            "bytes=",
            "bytes=,",
            "bytes",
            "",
            "0-4",
            "bytes=0-1,x",
            "bytes=0-1,5-6",
            "bytes=0-1, 0-1",
        ] {
            assert_eq!(p(h, 100), Unsatisfiable, "{h:?}");
        }
        assert_eq!(parse_range(b"bytes=\xff-1", 100), Unsatisfiable);
        assert_eq!(parse_range(b"\xff=0-1", 100), Whole);
    }

    #[test]
    fn empty_representation() {
        assert_eq!(p("bytes=0-", 0), Unsatisfiable);
        assert_eq!(p("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(p("bytes=-1", 0), Whole);
        assert_eq!(p("bytes=-0", 0), Unsatisfiable);
    }
}
