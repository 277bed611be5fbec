//! The release manifest (signed by the release key) and the validation rules every update
//! document shares.
//!
//! Owns the wire type `{schema:1, app, version, channel, releasedAt, notes, artifacts,
//! rollout?}` of DESIGN.md and its checks: semver versions, 64-hex digests, sizes above
//! zero, no duplicate platform/arch/format, http(s) or relative URLs, app and channel names
//! that are safe as path segments. It refuses unknown schema versions.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};

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
}

impl ReleaseManifest {
    const DOC: &'static str = "release manifest";

    /// Parses verified payload bytes and validates them.
    pub fn from_verified_payload(bytes: &[u8]) -> Result<Self, DocumentError> {
        let m: Self = parse_json(Self::DOC, bytes)?;
        m.validate()?;
        Ok(m)
    }

    /// Checks every rule of the manifest.
    pub fn validate(&self) -> Result<(), DocumentError> {
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
        let mut seen = HashSet::new();
        for (i, a) in self.artifacts.iter().enumerate() {
            let field = |f: &str| format!("artifacts[{i}].{f}");
            if !seen.insert((a.platform, a.arch, a.format)) {
                return Err(invalid(
                    d,
                    &format!("artifacts[{i}]"),
                    format!(
                        "duplicate artifact for {}/{}/{}",
                        a.platform, a.arch, a.format
                    ),
                ));
            }
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
            validate_sha256(d, &field("sha256"), &a.sha256)?;
            validate_url(d, &field("url"), &a.url)?;
            if let Some(b) = &a.sigstore_bundle {
                validate_url(d, &field("sigstoreBundle"), b)?;
            }
        }
        if let Some(r) = &self.rollout {
            validate_rollout(d, r)?;
        }
        Ok(())
    }

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

    /// The rollout policy, with defaults when the manifest has none.
    pub fn rollout_policy(&self) -> RolloutPolicy {
        self.rollout.clone().unwrap_or_default()
    }
}

fn validate_rollout(d: &'static str, r: &RolloutPolicy) -> Result<(), DocumentError> {
    if r.stages.is_empty() || r.stages.len() > 20 {
        return Err(invalid(d, "rollout.stages", "between 1 and 20 stages"));
    }
    let mut prev = 0.0;
    for s in &r.stages {
        if !s.is_finite() || *s <= prev || *s > 100.0 {
            return Err(invalid(
                d,
                "rollout.stages",
                "stages must increase strictly within (0, 100]",
            ));
        }
        prev = *s;
    }
    if prev != 100.0 {
        return Err(invalid(d, "rollout.stages", "the last stage must be 100"));
    }
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

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    document: &'static str,
    bytes: &[u8],
) -> Result<T, DocumentError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        DocumentError::Malformed {
            document,
            message: if path == "." {
                inner.to_string()
            } else {
                format!("field {path}: {inner}")
            },
        }
    })
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

/// Whether `s` is 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn validate_sha256(d: &'static str, field: &str, s: &str) -> Result<(), DocumentError> {
    if is_sha256_hex(s) {
        Ok(())
    } else {
        Err(invalid(d, field, "not 64 lowercase hex digits"))
    }
}

/// Checks a document URL: absolute `http`/`https`, or relative (a path, without scheme,
/// host or backslashes).
pub fn check_url(s: &str) -> Result<(), String> {
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

pub(crate) fn validate_url(d: &'static str, field: &str, s: &str) -> Result<(), DocumentError> {
    check_url(s).map_err(|reason| invalid(d, field, reason))
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
