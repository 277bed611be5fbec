//! The debug line of an analytics event, in the specification's form:
//! `[Analytics] screen_view { screen_name: 'home' }`.
//!
//! Owns the one formatter the core's debug output uses (`debug: true` of the client, the
//! addon's `debug` option, `railgun track --debug`): the event's name, then its properties as
//! Node's `util.inspect` prints a plain object on one line (what the Electron layer's
//! `console.log('[Analytics]', name, properties)` shows), so the two layers print the same
//! line. The shared vectors are `tests/vectors/analytics_debug.json`. Keys come in the core's
//! order (sorted); numbers are JavaScript's `Number#toString` (`1e+21`, `1e-7`, `-0`),
//! strings take Node's quote choice and escapes. It refuses to print anything else: no ids,
//! no user, no session (the debug line shows what the app tracked, never who).

use std::fmt::Write as _;

use super::event::{Properties, PropertyValue};

/// The debug line of the event `name`: `[Analytics] name`, then, when it has properties, a
/// space and the properties as a JavaScript object literal on one line.
///
/// ```
/// use railgun_core::analytics::{debug_line, Properties, PropertyValue};
/// let props = Properties::from([("screen_name".to_string(), PropertyValue::from("home"))]);
/// assert_eq!(
///     debug_line("screen_view", Some(&props)),
///     "[Analytics] screen_view { screen_name: 'home' }"
/// );
/// assert_eq!(debug_line("session_start", None), "[Analytics] session_start");
/// ```
pub fn debug_line(name: &str, properties: Option<&Properties>) -> String {
    let mut line = format!("[Analytics] {name}");
    if let Some(p) = properties {
        line.push(' ');
        object_literal(&mut line, p);
    }
    line
}

/// `{}` or `{ key: value, ... }`, as `util.inspect` prints a flat object on one line.
fn object_literal(out: &mut String, properties: &Properties) {
    if properties.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push_str("{ ");
    for (i, (key, value)) in properties.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_identifier(key) {
            out.push_str(key);
        } else {
            string_literal(out, key);
        }
        out.push_str(": ");
        match value {
            PropertyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            PropertyValue::Number(n) => js_number(out, *n),
            PropertyValue::String(s) => string_literal(out, s),
        }
    }
    out.push_str(" }");
}

/// A key `util.inspect` prints bare: `^[a-zA-Z_][a-zA-Z_0-9]*$`.
fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A string as `util.inspect` quotes it: single quotes, unless the string holds `'` and no
/// `"` (then double quotes), or `'` and `"` but neither `` ` `` nor `${` (then backticks);
/// only the single quote is ever escaped as a quote. Control characters (C0, DEL and C1)
/// and the backslash are escaped as Node writes them (`\n`, `\x0B`, `\x7F`).
fn string_literal(out: &mut String, s: &str) {
    let quote = if !s.contains('\'') {
        '\''
    } else if !s.contains('"') {
        '"'
    } else if !s.contains('`') && !s.contains("${") {
        '`'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\'' if quote == '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' => {
                let _ = write!(out, "\\x{:02X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// `n` as JavaScript prints a number (`Number#toString`, with `util.inspect`'s `-0`): the
/// shortest digits that read back as `n`, positional for decimal exponents from -7 to 20,
/// else `d.ddde±x`.
fn js_number(out: &mut String, n: f64) {
    if n.is_nan() {
        out.push_str("NaN");
        return;
    }
    if n.is_sign_negative() {
        out.push('-');
    }
    let n = n.abs();
    if n.is_infinite() {
        out.push_str("Infinity");
        return;
    }
    if n == 0.0 {
        out.push('0');
        return;
    }
    // Rust's `{:e}` writes the shortest digits that round-trip (`d[.ddd]e[-]x`); their count
    // k is JavaScript's too. Where two k-digit strings round-trip equally close, JavaScript
    // takes the even one: `{:.(k-1)e}`, the exact value rounded half to even, gives it.
    let shortest = format!("{n:e}");
    let k = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.chars().filter(char::is_ascii_digit).count());
    let sci = format!("{:.*e}", k.saturating_sub(1), n);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i32;
    // The decimal point sits after `point` digits: value = 0.digits × 10^point.
    let point = exp.parse::<i32>().unwrap_or(0) + 1;
    if k <= point && point <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (point - k) as usize));
    } else if 0 < point && point <= 21 {
        let (int, frac) = digits.split_at(point as usize);
        let _ = write!(out, "{int}.{frac}");
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = point - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(n: f64) -> String {
        let mut s = String::new();
        js_number(&mut s, n);
        s
    }

    #[test]
    fn numbers_read_as_javascript_prints_them() {
        for (n, js) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-3.25, "-3.25"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123456789.0, "123456789"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1e-6, "0.000001"),
            (1.25e-6, "0.00000125"),
            (1e-7, "1e-7"),
            (-2.5e-8, "-2.5e-8"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (9007199254740993.0, "9007199254740992"),
            // Two shortest strings round-trip and are equally close: the even one.
            (998_148_874_942_271.0 + 0.25, "998148874942271.2"),
            (176_547_696_529_523.0 + 0.625, "176547696529523.62"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(number(n), js, "{n:?}");
        }
    }

    #[test]
    fn keys_are_bare_only_when_they_are_identifiers() {
        for (key, bare) in [
            ("a", true),
            ("_x1", true),
            ("A_b_9", true),
            ("", false),
            ("1a", false),
            ("a-b", false),
            ("a.b", false),
            ("$a", false),
            ("é", false),
        ] {
            assert_eq!(is_identifier(key), bare, "{key:?}");
        }
    }

    #[test]
    fn an_empty_object_is_two_braces() {
        assert_eq!(
            debug_line("x", Some(&Properties::new())),
            "[Analytics] x {}"
        );
    }
}
