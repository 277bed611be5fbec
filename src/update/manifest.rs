//! The release manifest (signed by the release key) and the validation rules every update
//! document shares.
//!
//! Owns the wire type `{schema:1, app, version, channel, releasedAt, notes, artifacts,
//! rollout?, patches?}` of DESIGN.md and its checks: semver versions, 64-hex digests, sizes
//! above zero, no duplicate platform/arch/format, http(s) or relative URLs, app and channel
//! names that are safe as path segments, delta patches that name an artifact of the release
//! and an older version. It refuses unknown schema versions.

use std::fmt;

use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::trust::{SignedDocument, PAYLOAD_RELEASE};

/// The schema version railgun writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
/// Largest artifact size accepted (64 GiB): anything above is a broken or hostile manifest.
pub const MAX_ARTIFACT_SIZE: u64 = 64 * 1024 * 1024 * 1024;
/// Most artifacts one manifest may list.
pub const MAX_ARTIFACTS: usize = 256;
/// Channels every app has; other names are allowed as custom channels.
pub const KNOWN_CHANNELS: [&str; 3] = ["stable", "beta", "canary"];

/// A document that is well-formed JSON but breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The JSON does not have the document's shape (a wrong type names the field).
    #[error("malformed {document}: {message}")]
    Malformed {
        /// Which document.
        document: &'static str,
        /// serde's description, naming the field and position.
        message: String,
    },
    /// A `schema` this version does not understand.
    #[error("{document} has schema {found}, this client understands schema {SCHEMA_VERSION}")]
    UnsupportedSchema {
        /// Which document.
        document: &'static str,
        /// Schema found.
        found: u32,
    },
    /// A field with a value outside its rules.
    #[error("{document}: invalid {field}: {reason}")]
    Invalid {
        /// Which document.
        document: &'static str,
        /// The field (JSON path).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// Operating system of an artifact (Node's `process.platform` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// macOS.
    Darwin,
    /// Windows.
    Win32,
    /// Linux.
    Linux,
}

/// CPU architecture of an artifact (Node's `process.arch` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86-64.
    X64,
    /// 64-bit ARM.
    Arm64,
    /// 32-bit x86.
    Ia32,
}

/// Package format of an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Format {
    /// A Linux AppImage (one executable file).
    #[serde(rename = "appimage")]
    AppImage,
    /// A gzip-compressed tarball.
    #[serde(rename = "tar.gz")]
    TarGz,
    /// A zip archive (macOS `.app` bundles).
    #[serde(rename = "zip")]
    Zip,
    /// A macOS disk image.
    #[serde(rename = "dmg")]
    Dmg,
    /// A Windows NSIS installer.
    #[serde(rename = "nsis")]
    Nsis,
    /// A Debian package.
    #[serde(rename = "deb")]
    Deb,
    /// An RPM package.
    #[serde(rename = "rpm")]
    Rpm,
}

macro_rules! wire_names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),*];
            /// The wire name.
            pub fn as_str(&self) -> &'static str {
                match self { $(<$ty>::$variant => $name),* }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(<$ty>::$variant),)*
                    _ => Err(format!(
                        "unknown {} {s:?} (expected one of: {})",
                        stringify!($ty).to_lowercase(),
                        [$($name),*].join(", ")
                    )),
                }
            }
        }
    };
}

wire_names!(Platform { Darwin => "darwin", Win32 => "win32", Linux => "linux" });
wire_names!(Arch { X64 => "x64", Arm64 => "arm64", Ia32 => "ia32" });
wire_names!(Format {
    AppImage => "appimage", TarGz => "tar.gz", Zip => "zip", Dmg => "dmg",
    Nsis => "nsis", Deb => "deb", Rpm => "rpm",
});

impl Platform {
    /// The platform this code runs on, if it is one railgun ships for.
    pub fn current() -> Option<Self> {
        match std::env::consts::OS {
            "macos" => Some(Platform::Darwin),
            "windows" => Some(Platform::Win32),
            "linux" => Some(Platform::Linux),
            _ => None,
        }
    }

    /// Formats an updater on this platform can apply, most preferred first.
    pub fn default_formats(&self) -> &'static [Format] {
        match self {
            Platform::Linux => &[Format::TarGz, Format::AppImage, Format::Deb, Format::Rpm],
            Platform::Darwin => &[Format::Zip, Format::Dmg],
            Platform::Win32 => &[Format::Nsis, Format::Zip],
        }
    }
}

impl Arch {
    /// The architecture this code runs on, if it is one railgun ships for.
    pub fn current() -> Option<Self> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X64),
            "aarch64" => Some(Arch::Arm64),
            "x86" => Some(Arch::Ia32),
            _ => None,
        }
    }
}

/// A distinct number below 63 for each platform/arch/format combination.
fn combination_index(p: Platform, a: Arch, f: Format) -> u32 {
    let p = p as u32; // < 3
    let a = a as u32; // < 3
    let f = f as u32; // < 7
    (p * 3 + a) * 7 + f
}

/// One downloadable file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Operating system.
    pub platform: Platform,
    /// CPU architecture.
    pub arch: Arch,
    /// Package format.
    pub format: Format,
    /// Absolute http(s) URL, or relative to the manifest's URL.
    pub url: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// URL of a Sigstore bundle for the file (absolute or relative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigstore_bundle: Option<String>,
}

/// Most delta patches one manifest may list.
pub const MAX_PATCHES: usize = 256;

/// A delta patch: a zstd frame made in patch-from mode that turns the uncompressed payload of
/// version `from`'s artifact (same platform/arch/format) into this release's uncompressed
/// payload (see `update::delta`). For a `tar.gz` the payload is the tar inside; for every
/// other format it is the file itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patch {
    /// File name of the patch, beside the manifest (a plain name, no folders).
    pub file: String,
    /// Exact size of the patch in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the patch.
    pub sha256: String,
    /// The version whose artifact the patch applies to (older than the release).
    pub from: Version,
    /// Operating system of the artifact.
    pub platform: Platform,
    /// CPU architecture of the artifact.
    pub arch: Arch,
    /// Package format of the artifact.
    pub format: Format,
    /// Size of the uncompressed payload of the base (version `from`).
    pub base_size: u64,
    /// SHA-256 of the uncompressed payload of the base (version `from`).
    pub base_sha256: String,
    /// Size of what applying the patch must produce (the uncompressed payload).
    pub result_size: u64,
    /// SHA-256 of what applying the patch must produce (the uncompressed payload).
    pub result_sha256: String,
}

/// How a release is rolled out and when it is halted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPolicy {
    /// Percentages of the stages, increasing, ending at 100.
    #[serde(default = "default_stages")]
    pub stages: Vec<f64>,
    /// Hours a healthy stage lasts before it advances.
    #[serde(default = "default_stage_hours")]
    pub stage_hours: f64,
    /// Error rate (share of installs with errors) that halts the rollout.
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// Crash rate (share of installs with crashes) that halts the rollout.
    #[serde(default = "default_max_crash_rate")]
    pub max_crash_rate: f64,
    /// Installs needed before any decision is taken.
    #[serde(default = "default_min_installs")]
    pub min_installs: u64,
}

fn default_stages() -> Vec<f64> {
    vec![10.0, 25.0, 50.0, 100.0]
}
fn default_stage_hours() -> f64 {
    24.0
}
fn default_max_error_rate() -> f64 {
    0.05
}
fn default_max_crash_rate() -> f64 {
    0.01
}
fn default_min_installs() -> u64 {
    50
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        Self {
            stages: default_stages(),
            stage_hours: default_stage_hours(),
            max_error_rate: default_max_error_rate(),
            max_crash_rate: default_max_crash_rate(),
            min_installs: default_min_installs(),
        }
    }
}

/// A release manifest: what a version is made of, signed by the release key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseManifest {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// App name.
    pub app: String,
    /// Semantic version.
    pub version: Version,
    /// Channel the release was made for.
    pub channel: String,
    /// When it was released.
    pub released_at: DateTime<Utc>,
    /// Release notes (Markdown).
    #[serde(default)]
    pub notes: String,
    /// The files, one per platform/arch/format.
    pub artifacts: Vec<Artifact>,
    /// Rollout policy; defaults apply when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutPolicy>,
    /// Delta patches from earlier versions; absent when there are none (manifests without
    /// the field verify as before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
}

impl SignedDocument for ReleaseManifest {
    const DOC: &'static str = "release manifest";
    const PAYLOAD_TYPE: &'static str = PAYLOAD_RELEASE;
    type Error = DocumentError;

    fn malformed(message: String) -> DocumentError {
        DocumentError::Malformed {
            document: Self::DOC,
            message,
        }
    }

    /// Checks every rule of the manifest.
    fn validate(&self) -> Result<(), DocumentError> {
        let d = Self::DOC;
        if self.schema != SCHEMA_VERSION {
            return Err(DocumentError::UnsupportedSchema {
                document: d,
                found: self.schema,
            });
        }
        validate_app(d, &self.app)?;
        validate_channel(d, "channel", &self.channel)?;
        if self.notes.len() > 64 * 1024 {
            return Err(invalid(d, "notes", "longer than 64 KiB"));
        }
        if self.artifacts.is_empty() {
            return Err(invalid(d, "artifacts", "no artifacts"));
        }
        if self.artifacts.len() > MAX_ARTIFACTS {
            return Err(invalid(
                d,
                "artifacts",
                format!(
                    "{} artifacts, at most {MAX_ARTIFACTS}",
                    self.artifacts.len()
                ),
            ));
        }
        // Platform × arch × format is 3 × 3 × 7 = 63 combinations: one bit each.
        let mut seen = 0u64;
        for (i, a) in self.artifacts.iter().enumerate() {
            // Field names are built only on the error path (no allocation per artifact).
            let field = |f: &str| format!("artifacts[{i}].{f}");
            let bit = 1u64 << combination_index(a.platform, a.arch, a.format);
            if seen & bit != 0 {
                return Err(invalid(
                    d,
                    &format!("artifacts[{i}]"),
                    format!(
                        "duplicate artifact for {}/{}/{}",
                        a.platform, a.arch, a.format
                    ),
                ));
            }
            seen |= bit;
            if a.size == 0 {
                return Err(invalid(d, &field("size"), "size must be above 0"));
            }
            if a.size > MAX_ARTIFACT_SIZE {
                return Err(invalid(
                    d,
                    &field("size"),
                    format!("{} bytes is above the {MAX_ARTIFACT_SIZE} limit", a.size),
                ));
            }
            if !is_sha256_hex(&a.sha256) {
                return Err(invalid(d, &field("sha256"), SHA256_REASON));
            }
            check_url(&a.url).map_err(|reason| invalid(d, &field("url"), reason))?;
            if let Some(b) = &a.sigstore_bundle {
                check_url(b).map_err(|reason| invalid(d, &field("sigstoreBundle"), reason))?;
            }
        }
        if let Some(r) = &self.rollout {
            validate_rollout(d, r)?;
        }
        self.validate_patches()
    }
}

impl ReleaseManifest {
    /// The artifact for `platform`/`arch`, in the first of `formats` that exists.
    pub fn select_artifact(
        &self,
        platform: Platform,
        arch: Arch,
        formats: &[Format],
    ) -> Option<&Artifact> {
        formats.iter().find_map(|f| {
            self.artifacts
                .iter()
                .find(|a| a.platform == platform && a.arch == arch && a.format == *f)
        })
    }

    /// The patch that turns `from`'s artifact for `artifact`'s platform/arch/format into
    /// `artifact`'s payload, if the manifest lists one.
    pub fn patch_for(&self, artifact: &Artifact, from: &Version) -> Option<&Patch> {
        self.patches.iter().find(|p| {
            &p.from == from
                && p.platform == artifact.platform
                && p.arch == artifact.arch
                && p.format == artifact.format
        })
    }

    fn validate_patches(&self) -> Result<(), DocumentError> {
        let d = Self::DOC;
        if self.patches.len() > MAX_PATCHES {
            return Err(invalid(
                d,
                "patches",
                format!("{} patches, at most {MAX_PATCHES}", self.patches.len()),
            ));
        }
        for (i, p) in self.patches.iter().enumerate() {
            let field = |f: &str| format!("patches[{i}].{f}");
            if !is_safe_segment(&p.file, 255) {
                return Err(invalid(
                    d,
                    &field("file"),
                    "a plain file name of [A-Za-z0-9._-] beside the manifest",
                ));
            }
            for (name, size) in [
                ("size", p.size),
                ("baseSize", p.base_size),
                ("resultSize", p.result_size),
            ] {
                if size == 0 || size > MAX_ARTIFACT_SIZE {
                    return Err(invalid(
                        d,
                        &field(name),
                        format!("must lie within 1..={MAX_ARTIFACT_SIZE}"),
                    ));
                }
            }
            for (name, digest) in [
                ("sha256", &p.sha256),
                ("baseSha256", &p.base_sha256),
                ("resultSha256", &p.result_sha256),
            ] {
                if !is_sha256_hex(digest) {
                    return Err(invalid(d, &field(name), SHA256_REASON));
                }
            }
            if p.from >= self.version {
                return Err(invalid(
                    d,
                    &field("from"),
                    format!("{} is not older than {}", p.from, self.version),
                ));
            }
            if !self
                .artifacts
                .iter()
                .any(|a| a.platform == p.platform && a.arch == p.arch && a.format == p.format)
            {
                return Err(invalid(
                    d,
                    &format!("patches[{i}]"),
                    format!(
                        "no artifact for {}/{}/{} in this release",
                        p.platform, p.arch, p.format
                    ),
                ));
            }
            if self.patches[..i].iter().any(|q| {
                q.from == p.from
                    && q.platform == p.platform
                    && q.arch == p.arch
                    && q.format == p.format
            }) {
                return Err(invalid(
                    d,
                    &format!("patches[{i}]"),
                    format!(
                        "duplicate patch from {} for {}/{}/{}",
                        p.from, p.platform, p.arch, p.format
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The rollout policy, with defaults when the manifest has none.
    pub fn rollout_policy(&self) -> RolloutPolicy {
        self.rollout.clone().unwrap_or_default()
    }
}

/// Most stages a rollout may have.
pub const MAX_STAGES: usize = 20;

/// The rules of rollout stages (a manifest's `rollout.stages`, a server's
/// `--channel-stages`): 1–20 stages, strictly increasing within (0, 100], the last one 100.
pub fn check_stages(stages: &[f64]) -> Result<(), &'static str> {
    if stages.is_empty() || stages.len() > MAX_STAGES {
        return Err("between 1 and 20 stages");
    }
    let mut prev = 0.0;
    for s in stages {
        if !s.is_finite() || *s <= prev || *s > 100.0 {
            return Err("stages must increase strictly within (0, 100]");
        }
        prev = *s;
    }
    if prev != 100.0 {
        return Err("the last stage must be 100");
    }
    Ok(())
}

fn validate_rollout(d: &'static str, r: &RolloutPolicy) -> Result<(), DocumentError> {
    check_stages(&r.stages).map_err(|why| invalid(d, "rollout.stages", why))?;
    if !r.stage_hours.is_finite() || r.stage_hours <= 0.0 {
        return Err(invalid(d, "rollout.stageHours", "must be above 0"));
    }
    for (name, v) in [
        ("rollout.maxErrorRate", r.max_error_rate),
        ("rollout.maxCrashRate", r.max_crash_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(d, name, "a rate lies within [0, 1]"));
        }
    }
    Ok(())
}

pub(crate) fn invalid(
    document: &'static str,
    field: &str,
    reason: impl Into<String>,
) -> DocumentError {
    DocumentError::Invalid {
        document,
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Whether `s` is a valid app name: 1–64 of `[A-Za-z0-9._-]`, starting with a letter or
/// digit (it is used as a path segment).
pub fn is_valid_app_name(s: &str) -> bool {
    is_safe_segment(s, 64)
}

/// Whether `s` is a valid channel name: `stable`, `beta`, `canary` or a custom name of
/// 1–32 of `[a-z0-9-]` starting with a letter or digit.
pub fn is_valid_channel(s: &str) -> bool {
    KNOWN_CHANNELS.contains(&s)
        || (!s.is_empty()
            && s.len() <= 32
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
}

fn is_safe_segment(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        && !s.contains("..")
}

pub(crate) fn validate_app(d: &'static str, app: &str) -> Result<(), DocumentError> {
    if is_valid_app_name(app) {
        Ok(())
    } else {
        Err(invalid(
            d,
            "app",
            format!("{app:?} is not 1-64 of [A-Za-z0-9._-] starting with a letter or digit"),
        ))
    }
}

pub(crate) fn validate_channel(
    d: &'static str,
    field: &str,
    channel: &str,
) -> Result<(), DocumentError> {
    if is_valid_channel(channel) {
        Ok(())
    } else {
        Err(invalid(
            d,
            field,
            format!("{channel:?} is not stable, beta, canary or a custom name of [a-z0-9-]"),
        ))
    }
}

const SHA256_REASON: &str = "not 64 lowercase hex digits";

/// Whether `s` is 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    // A fold without early exit: the compiler vectorizes it.
    s.len() == 64
        && s.bytes().fold(true, |ok, b| {
            ok & (b.is_ascii_digit() | (b'a'..=b'f').contains(&b))
        })
}

pub(crate) fn validate_sha256(d: &'static str, field: &str, s: &str) -> Result<(), DocumentError> {
    if is_sha256_hex(s) {
        Ok(())
    } else {
        Err(invalid(d, field, SHA256_REASON))
    }
}

/// Checks a document URL: absolute `http`/`https`, or relative (a path, without scheme,
/// host or backslashes).
pub fn check_url(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 2048 {
        return Err("empty or longer than 2048 characters".into());
    }
    // ASCII controls and space are the bytes up to 0x20, plus DEL; a fold without early exit
    // lets the compiler vectorize the scan. Non-ASCII strings are also checked for Unicode
    // controls (C1).
    let bad_ascii = s.bytes().fold(false, |bad, b| {
        bad | (b <= b' ') | (b == 0x7f) | (b == b'\\')
    });
    if bad_ascii || (!s.is_ascii() && s.chars().any(char::is_control)) {
        return Err("contains spaces, control characters or backslashes".into());
    }
    if is_plain_http_url(s) {
        return Ok(());
    }
    // Without a ':' there is no scheme, and `Url::parse` can only answer
    // `RelativeUrlWithoutBase`: skip the parser (half of a manifest's URLs are relative).
    let parsed = if s.contains(':') {
        url::Url::parse(s)
    } else {
        Err(url::ParseError::RelativeUrlWithoutBase)
    };
    match parsed {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            if u.host_str().is_none_or(str::is_empty) {
                Err("an absolute URL needs a host".into())
            } else {
                Ok(())
            }
        }
        Ok(u) => Err(format!(
            "scheme {:?} is not allowed (http or https only)",
            u.scheme()
        )),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            if s.starts_with("//") {
                Err("scheme-relative URLs are not allowed".into())
            } else {
                Ok(())
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A conservative recognizer of the common absolute URL shape
/// `http(s)://host.name[:port][/ ? # anything]` for which `Url::parse` certainly succeeds
/// with a non-empty host, so the full parser is not needed. Anything else (IP addresses,
/// user info, punycode, upper case, empty labels, ...) answers `false` and goes to the
/// parser. `s` has already been checked for spaces, controls and backslashes.
fn is_plain_http_url(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if let Some(p) = port {
        // Empty, non-digit or out-of-range ports go to the parser.
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if p.parse::<u32>().map_or(true, |n| n > 65_535) {
            return false;
        }
    }
    if host.is_empty() || host.len() > 253 || host.contains("xn--") {
        return false;
    }
    let mut last = "";
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return false;
        }
        last = label;
    }
    // A last label that starts with a letter cannot make the host an IPv4 address.
    last.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> ReleaseManifest {
        ReleaseManifest {
            schema: 1,
            app: "railgun-app".into(),
            version: Version::new(1, 2, 3),
            channel: "stable".into(),
            released_at: "2026-01-01T00:00:00Z".parse().expect("time"),
            notes: String::new(),
            artifacts: vec![Artifact {
                platform: Platform::Linux,
                arch: Arch::X64,
                format: Format::TarGz,
                url: "app-1.2.3-linux-x64.tar.gz".into(),
                size: 10,
                sha256: "a".repeat(64),
                sigstore_bundle: None,
            }],
            rollout: Some(RolloutPolicy::default()),
            patches: Vec::new(),
        }
    }

    fn patch() -> Patch {
        Patch {
            file: "app-1.2.3-from-1.2.2-linux-x64.tar.zst".into(),
            size: 5,
            sha256: "b".repeat(64),
            from: Version::new(1, 2, 2),
            platform: Platform::Linux,
            arch: Arch::X64,
            format: Format::TarGz,
            base_size: 7,
            base_sha256: "c".repeat(64),
            result_size: 9,
            result_sha256: "d".repeat(64),
        }
    }

    #[test]
    fn patches_are_absent_from_the_wire_when_empty_and_listed_when_present() {
        let json = serde_json::to_value(manifest()).expect("json");
        assert!(json.get("patches").is_none(), "{json}");
        let mut m = manifest();
        m.patches.push(patch());
        m.validate().expect("valid");
        let json = serde_json::to_value(&m).expect("json");
        let p = &json["patches"][0];
        for k in [
            "file", "size", "sha256", "from", "platform", "arch", "format",
        ] {
            assert!(p.get(k).is_some(), "{k} missing in {p}");
        }
        assert_eq!(p["resultSha256"], "d".repeat(64));
        assert_eq!(p["baseSize"], 7);
        let back: ReleaseManifest = serde_json::from_value(json).expect("parse");
        assert_eq!(back, m);
        assert_eq!(
            m.patch_for(&m.artifacts[0], &Version::new(1, 2, 2)),
            Some(&m.patches[0])
        );
        assert_eq!(m.patch_for(&m.artifacts[0], &Version::new(1, 2, 1)), None);
    }

    #[test]
    fn bad_patches_are_refused_with_their_field() {
        type Break = fn(&mut Patch);
        let cases: [(&str, Break); 7] = [
            ("patches[0].file", |p| p.file = "../x".into()),
            ("patches[0].size", |p| p.size = 0),
            ("patches[0].resultSha256", |p| p.result_sha256 = "X".into()),
            ("patches[0].baseSha256", |p| p.base_sha256 = "c".repeat(63)),
            ("patches[0].from", |p| p.from = Version::new(1, 2, 3)),
            ("patches[0]", |p| p.arch = Arch::Arm64),
            ("patches[0].resultSize", |p| p.result_size = 0),
        ];
        for (field, break_it) in cases {
            let mut m = manifest();
            let mut p = patch();
            break_it(&mut p);
            m.patches.push(p);
            match m.validate() {
                Err(DocumentError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut m = manifest();
        m.patches = vec![patch(), patch()];
        match m.validate() {
            Err(DocumentError::Invalid { field, reason, .. }) => {
                assert_eq!(field, "patches[1]");
                assert!(reason.contains("duplicate"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wire_shape_is_camel_case() {
        let json = serde_json::to_value(manifest()).expect("json");
        assert_eq!(json["releasedAt"], "2026-01-01T00:00:00Z");
        assert_eq!(json["artifacts"][0]["format"], "tar.gz");
        assert_eq!(json["rollout"]["stageHours"], 24.0);
        assert_eq!(json["rollout"]["maxErrorRate"], 0.05);
        let back: ReleaseManifest = serde_json::from_value(json).expect("back");
        assert_eq!(back, manifest());
    }

    #[test]
    fn validation_catches_each_rule() {
        manifest().validate().expect("valid");
        type Mutation = Box<dyn Fn(&mut ReleaseManifest)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("schema", Box::new(|m| m.schema = 2)),
            ("app", Box::new(|m| m.app = "../etc".into())),
            ("channel", Box::new(|m| m.channel = "Stable!".into())),
            ("size", Box::new(|m| m.artifacts[0].size = 0)),
            ("big", Box::new(|m| m.artifacts[0].size = u64::MAX)),
            ("sha", Box::new(|m| m.artifacts[0].sha256 = "A".repeat(64))),
            (
                "url",
                Box::new(|m| m.artifacts[0].url = "file:///etc/passwd".into()),
            ),
            (
                "url2",
                Box::new(|m| m.artifacts[0].url = "//evil.example/x".into()),
            ),
            ("none", Box::new(|m| m.artifacts.clear())),
            (
                "dup",
                Box::new(|m| {
                    let a = m.artifacts[0].clone();
                    m.artifacts.push(a)
                }),
            ),
            (
                "stages",
                Box::new(|m| m.rollout.as_mut().expect("r").stages = vec![50.0, 10.0, 100.0]),
            ),
            (
                "rate",
                Box::new(|m| m.rollout.as_mut().expect("r").max_error_rate = 2.0),
            ),
        ];
        for (name, mutate) in cases {
            let mut m = manifest();
            mutate(&mut m);
            assert!(m.validate().is_err(), "{name} should be invalid");
        }
    }

    #[test]
    fn every_platform_arch_format_combination_is_distinct() {
        let mut m = manifest();
        m.artifacts.clear();
        for p in Platform::ALL {
            for a in Arch::ALL {
                for f in Format::ALL {
                    let mut x = manifest().artifacts[0].clone();
                    (x.platform, x.arch, x.format) = (*p, *a, *f);
                    m.artifacts.push(x);
                }
            }
        }
        assert_eq!(m.artifacts.len(), 63);
        m.validate().expect("63 distinct artifacts");
        let last = m.artifacts[62].clone();
        m.artifacts.push(last);
        let err = m.validate().expect_err("duplicate");
        assert!(err.to_string().contains("artifacts[63]"), "{err}");
        assert!(
            err.to_string().contains("win32/ia32/rpm")
                || err.to_string().contains("linux/ia32/rpm"),
            "{err}"
        );
    }

    /// `check_url` as it was before the fast paths: the oracle they must agree with.
    fn check_url_with_parser_only(s: &str) -> Result<(), String> {
        if s.is_empty() || s.len() > 2048 {
            return Err("empty or longer than 2048 characters".into());
        }
        if s.chars().any(|c| c.is_control() || c == '\\' || c == ' ') {
            return Err("contains spaces, control characters or backslashes".into());
        }
        match url::Url::parse(s) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
                if u.host_str().is_none_or(str::is_empty) {
                    Err("an absolute URL needs a host".into())
                } else {
                    Ok(())
                }
            }
            Ok(u) => Err(format!(
                "scheme {:?} is not allowed (http or https only)",
                u.scheme()
            )),
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                if s.starts_with("//") {
                    Err("scheme-relative URLs are not allowed".into())
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn fast_url_checks_agree_with_the_parser() {
        let cases = [
            "https://cdn.example.com/a/b-1.0.0.tar.gz",
            "http://cdn.example.com",
            "https://cdn.example.com:8443/x?y=1#z",
            "https://cdn.example.com:65535/x",
            "https://cdn.example.com:65536/x",
            "https://cdn.example.com:/x",
            "https://cdn.example.com:99999999/x",
            "https://cdn.example.com:8a/x",
            "https://1.2.3.4/x",
            "https://1.2.3.999/x",
            "https://example.123/x",
            "https://example.0x1f/x",
            "https://a..b/x",
            "https://a.b./x",
            "https://-a.b/x",
            "https://a-.b/x",
            "https://xn--zz.example/x",
            "https://xn--nxasmq6b.example/x",
            "https://EXAMPLE.com/x",
            "https://user:pw@example.com/x",
            "https://@example.com/x",
            "https:///x",
            "https://",
            "https:example.com/x",
            "https://[::1]/x",
            "https://[::1/x",
            "https://exa%41mple.com/x",
            "https://ex_ample.com/x",
            "https://caf\u{e9}.example/x",
            "https://a.b/%zz/\u{e9}?\u{1F600}#%",
            "HTTP://example.com/x",
            "ftp://example.com/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "//evil.example/x",
            "../releases/1.0.0/manifest.json",
            "a:b",
            "rail-gun-1.0.0-linux-x64.tar.gz.sigstore.json",
            "a\u{85}b",
            "a\u{7f}b",
            "",
        ];
        for s in cases {
            assert_eq!(check_url(s), check_url_with_parser_only(s), "{s:?}");
            if is_plain_http_url(s) {
                let u = url::Url::parse(s).expect("fast path implies parse");
                assert!(u.host_str().is_some_and(|h| !h.is_empty()), "{s:?}");
            }
        }
        let long = format!("https://{}.example/x", "a".repeat(64));
        assert_eq!(check_url(&long), check_url_with_parser_only(&long));
    }

    #[test]
    fn url_checks_without_the_parser_agree() {
        // No ':' means relative; `//` is still refused, controls anywhere are refused.
        assert!(check_url("a-b_c.tar.gz.sigstore.json").is_ok());
        assert!(check_url("//evil.example/x").is_err());
        assert!(check_url("a\u{85}b").is_err(), "C1 control (NEL)");
        assert!(check_url("a\u{7f}b").is_err());
        assert!(check_url("caf\u{e9}/x.tar.gz").is_ok());
        assert!(check_url("https://exa mple.com/x").is_err());
        assert!(check_url("https://[::1/x").is_err());
        let err = ReleaseManifest::from_verified_payload(
            br#"{"schema":1,"app":"a","version":"1.0.0","channel":"stable","releasedAt":"2026-01-01T00:00:00Z","artifacts":[{"platform":"linux","arch":"x64","format":"zip","url":"x","size":"big","sha256":"a"}]}"#,
        )
        .expect_err("wrong type");
        assert!(err.to_string().contains("artifacts[0].size"), "{err}");
    }

    #[test]
    fn custom_channels_and_urls() {
        assert!(is_valid_channel("nightly-2"));
        assert!(!is_valid_channel(""));
        assert!(!is_valid_channel("a/b"));
        assert!(check_url("https://cdn.example.com/a.tar.gz").is_ok());
        assert!(check_url("../releases/1.0.0/manifest.json").is_ok());
        assert!(check_url("javascript:alert(1)").is_err());
        assert!(check_url("https://").is_err());
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err =
            ReleaseManifest::from_verified_payload(br#"{"schema":"one"}"#).expect_err("wrong type");
        assert!(err.to_string().contains("schema"), "{err}");
        assert!(ReleaseManifest::from_verified_payload(b"not json").is_err());
        let err = ReleaseManifest::from_verified_payload(
            br#"{"schema":1,"app":"a","version":"1.0","channel":"stable","releasedAt":"2026-01-01T00:00:00Z","artifacts":[]}"#,
        )
        .expect_err("bad semver");
        assert!(matches!(err, DocumentError::Malformed { .. }));
    }

    #[test]
    fn selects_by_format_preference() {
        let mut m = manifest();
        let mut app = m.artifacts[0].clone();
        app.format = Format::AppImage;
        m.artifacts.push(app);
        let a = m
            .select_artifact(
                Platform::Linux,
                Arch::X64,
                &[Format::AppImage, Format::TarGz],
            )
            .expect("artifact");
        assert_eq!(a.format, Format::AppImage);
        assert!(m
            .select_artifact(
                Platform::Darwin,
                Arch::X64,
                Platform::Darwin.default_formats()
            )
            .is_none());
    }
}
