//! Scrubbing of free text before it is stored: error messages must not carry personal data.
//!
//! Owns [`scrub`]: email addresses become `<email>`, home-directory paths lose the user name
//! (`/home/<user>`, `/Users/<user>`, `C:\Users\<user>`), IPv4 and IPv6 addresses become
//! `<ip>`. It refuses to guess beyond these patterns: names or message contents in free text
//! cannot be recognised reliably, so apps must not put them into events in the first place.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::{Captures, Regex};

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static UNIX_HOME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(/home/|/Users/)[^/\s:'"]+"#)
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static WINDOWS_HOME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)([a-z]:[\\/]+(?:Users|Documents and Settings)[\\/]+)[^\\/\s:'"]+"#)
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
// Candidates only: every match is confirmed by the standard library's address parsers, so
// times (`12:30:45`) and version numbers with fewer than four parts are left alone.
static IPV6_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?:%[0-9A-Za-z]+)?")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static IPV4_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Replacement for an email address.
pub const EMAIL_MARK: &str = "<email>";
/// Replacement for an IP address.
pub const IP_MARK: &str = "<ip>";
/// Replacement for the user name in a home-directory path.
pub const USER_MARK: &str = "<user>";

/// Removes email addresses, home-directory user names and IP addresses from `text`.
///
/// ```
/// use railgun_core::analytics::scrub::scrub;
/// assert_eq!(
///     scrub("open /home/alice/x.txt for bob@example.org from 10.0.0.7"),
///     "open /home/<user>/x.txt for <email> from <ip>"
/// );
/// ```
pub fn scrub(text: &str) -> String {
    let s = EMAIL.replace_all(text, EMAIL_MARK);
    let s = replace(s, &UNIX_HOME, |c| format!("{}{USER_MARK}", &c[1]));
    let s = replace(s, &WINDOWS_HOME, |c| format!("{}{USER_MARK}", &c[1]));
    let s = replace(s, &IPV6_CANDIDATE, |c| {
        let m = &c[0];
        let addr = m.split('%').next().unwrap_or(m);
        if addr.parse::<Ipv6Addr>().is_ok() {
            IP_MARK.to_string()
        } else {
            m.to_string()
        }
    });
    let s = replace(s, &IPV4_CANDIDATE, |c| {
        if c[0].parse::<Ipv4Addr>().is_ok() {
            IP_MARK.to_string()
        } else {
            c[0].to_string()
        }
    });
    s.into_owned()
}

fn replace<'a>(
    s: Cow<'a, str>,
    re: &Regex,
    f: impl FnMut(&Captures<'_>) -> String,
) -> Cow<'a, str> {
    match re.replace_all(&s, f) {
        Cow::Borrowed(_) => s,
        Cow::Owned(o) => Cow::Owned(o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_harmless_text_alone() {
        for t in [
            "timeout after 12:30:45",
            "version 1.2.3 failed",
            "code 0x1f: not found",
            "",
        ] {
            assert_eq!(scrub(t), t);
        }
    }

    #[test]
    fn windows_paths() {
        assert_eq!(
            scrub(r"cannot read C:\Users\Alice\AppData\x.db"),
            r"cannot read C:\Users\<user>\AppData\x.db"
        );
        assert_eq!(scrub("d:/users/bob/x"), "d:/users/<user>/x");
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(scrub("peer [::1]:443 down"), "peer [<ip>]:443 down");
        assert_eq!(scrub("fe80::1%eth0 lost"), "<ip> lost");
        assert_eq!(
            scrub("2001:db8:85a3::8a2e:370:7334 and ::ffff:192.0.2.1"),
            "<ip> and <ip>"
        );
    }
}
