//! Applying a verified artifact: one [`Installer`] per format, atomic switches, rollback.
//!
//! Owns the install root's layout on Linux:
//!
//! ```text
//! <install_root>/versions/<version>/…    one folder per installed version
//! <install_root>/current -> versions/<v>  the running version (a relative symlink)
//! <install_root>/previous                 the version to roll back to (a small text file)
//! ```
//!
//! * `tar.gz` and `zip` are extracted into a temporary folder inside `versions/`, every file
//!   fsynced, then renamed to `versions/<version>/`; `current` is switched by creating
//!   `current.tmp` and renaming it over `current` (atomic: a crash leaves the old or the new
//!   link, never none). The previous version is kept, older ones are removed.
//! * `appimage` replaces one file by an atomic rename, keeping its mode; the old file stays as
//!   `<file>.previous`. The staged file is moved beside the target by a rename (copied only
//!   when staging is on another file system) and made durable by one `fsync` of the file and
//!   one of its folder: the download does not fsync, and no byte is copied twice.
//! * Extraction refuses the whole archive on `..`, absolute paths, links pointing outside the
//!   target, entries through an already-extracted symlink, hard links to anything but an
//!   earlier regular file, and device/fifo entries (tar-slip / zip-slip). Nothing is written
//!   outside the temporary folder, and a refused archive leaves nothing behind.
//! * `dmg`, `nsis`, `deb` and `rpm` cannot be applied here and return
//!   [`InstallError::Unsupported`] (their plans are on [`UnsupportedInstaller`]).
//!
//! It refuses to check signatures: only files already verified by `download` reach it.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use semver::Version;

use super::manifest::{Format, Platform};
use crate::error::{IoContext, PathIoError};

/// Name of the link to the running version.
pub const CURRENT: &str = "current";
/// Name of the file holding the previous version.
pub const PREVIOUS: &str = "previous";
/// Folder of installed versions.
pub const VERSIONS: &str = "versions";

/// Why an install or rollback failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The format cannot be applied on this platform.
    #[error("{format} updates cannot be applied on {platform}")]
    Unsupported {
        /// The format.
        format: Format,
        /// This platform.
        platform: String,
    },
    /// The archive holds an entry that would escape or subvert the target (zip/tar-slip).
    #[error("archive refused: entry {entry:?} {reason}; nothing was installed")]
    UnsafeEntry {
        /// The entry's path as written in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The archive could not be read.
    #[error("archive {path} is corrupt: {source}")]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// What is wrong (the decoder's error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// There is no version to roll back to.
    #[error("no previous version to roll back to in {root}")]
    NoPrevious {
        /// The install root.
        root: PathBuf,
    },
    /// The version folder is missing or broken.
    #[error("version {version} is not installed in {root}")]
    NotInstalled {
        /// The version.
        version: String,
        /// The install root.
        root: PathBuf,
    },
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<PathIoError> for InstallError {
    fn from(e: PathIoError) -> Self {
        InstallError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl InstallError {
    /// A stable code for bindings.
    pub fn code(&self) -> &'static str {
        match self {
            InstallError::Unsupported { .. } => "ERR_UPDATER_UNSUPPORTED_FORMAT",
            InstallError::UnsafeEntry { .. } => "ERR_UPDATER_UNSAFE_ARCHIVE",
            InstallError::Corrupt { .. } => "ERR_UPDATER_CORRUPT_ARCHIVE",
            InstallError::NoPrevious { .. } => "ERR_UPDATER_NO_PREVIOUS",
            InstallError::NotInstalled { .. } => "ERR_UPDATER_NOT_INSTALLED",
            InstallError::Io { .. } => "ERR_UPDATER_IO",
        }
    }
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The version now current.
    pub version: Version,
    /// Where it is (the version folder, or the replaced file).
    pub path: PathBuf,
    /// The version that was current before, kept for rollback.
    pub previous: Option<Version>,
}

/// Applies one artifact format.
pub trait Installer: Send + Sync + std::fmt::Debug {
    /// The format this installer applies.
    fn format(&self) -> Format;
    /// Applies the verified file `staged` as `version`. It may move `staged` into the install
    /// root (a staged file is discarded after an install); on failure it is left in place.
    fn install(&self, staged: &Path, version: &Version) -> Result<Installed, InstallError>;
}

/// The installer for `format` on `platform`, installing under `root`.
pub fn installer_for(format: Format, platform: Platform, root: &Path) -> Box<dyn Installer> {
    match (format, platform) {
        (Format::TarGz, Platform::Linux | Platform::Darwin) => {
            Box::new(ArchiveInstaller::new(InstallRoot::new(root), Format::TarGz))
        }
        (Format::Zip, Platform::Linux | Platform::Darwin) => {
            Box::new(ArchiveInstaller::new(InstallRoot::new(root), Format::Zip))
        }
        (Format::AppImage, Platform::Linux) => Box::new(AppImageInstaller {
            target: root.join("app.AppImage"),
        }),
        (format, _) => Box::new(UnsupportedInstaller { format }),
    }
}

/// An install root: `versions/`, the `current` link and the `previous` marker.
#[derive(Debug, Clone)]
pub struct InstallRoot {
    root: PathBuf,
}

impl InstallRoot {
    /// The root at `path` (created on first install).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { root: path.into() }
    }

    /// The root folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `versions/<version>`.
    pub fn version_dir(&self, version: &Version) -> PathBuf {
        self.root.join(VERSIONS).join(version.to_string())
    }

    /// The version `current` points to, if it points to an installed version.
    pub fn current_version(&self) -> Option<Version> {
        let target = fs::read_link(self.root.join(CURRENT)).ok()?;
        let name = target.file_name()?.to_str()?;
        let v: Version = name.parse().ok()?;
        self.version_dir(&v).is_dir().then_some(v)
    }

    /// The version recorded as previous, if it is still installed.
    pub fn previous_version(&self) -> Option<Version> {
        let s = fs::read_to_string(self.root.join(PREVIOUS)).ok()?;
        let v: Version = s.trim().parse().ok()?;
        self.version_dir(&v).is_dir().then_some(v)
    }

    /// Installed versions (folders of `versions/` named by a version), sorted.
    pub fn installed_versions(&self) -> Vec<Version> {
        let mut out: Vec<Version> = fs::read_dir(self.root.join(VERSIONS))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        out.sort();
        out
    }

    /// Points `current` at `versions/<version>` atomically and records the old one as
    /// previous.
    pub fn switch_to(&self, version: &Version) -> Result<Option<Version>, InstallError> {
        let dir = self.version_dir(version);
        if !dir.is_dir() {
            return Err(InstallError::NotInstalled {
                version: version.to_string(),
                root: self.root.clone(),
            });
        }
        let old = self.current_version();
        let tmp = self.root.join(format!("{CURRENT}.tmp"));
        let _ = fs::remove_file(&tmp);
        let rel = Path::new(VERSIONS).join(version.to_string());
        os::symlink(&rel, &tmp).at(&tmp)?;
        let cur = self.root.join(CURRENT);
        fs::rename(&tmp, &cur).at(&cur)?;
        sync_dir(&self.root);
        if let Some(o) = &old {
            if o != version {
                write_atomic(&self.root.join(PREVIOUS), o.to_string().as_bytes())?;
            }
        }
        Ok(old.filter(|o| o != version))
    }

    /// Switches `current` back to the previous version (and remembers the one left).
    pub fn rollback(&self) -> Result<(Option<Version>, Version), InstallError> {
        let prev = self
            .previous_version()
            .ok_or_else(|| InstallError::NoPrevious {
                root: self.root.clone(),
            })?;
        let from = self.switch_to(&prev)?;
        Ok((from, prev))
    }

    /// Removes every version but the current and previous ones, and stale temporary folders.
    pub fn prune(&self) -> Result<Vec<Version>, InstallError> {
        let keep: HashSet<Version> = self
            .current_version()
            .into_iter()
            .chain(self.previous_version())
            .collect();
        let mut removed = Vec::new();
        let versions = self.root.join(VERSIONS);
        for e in fs::read_dir(&versions).at(&versions)?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let path = e.path();
            if name.starts_with(".tmp-") {
                let _ = fs::remove_dir_all(&path);
                continue;
            }
            if let Ok(v) = name.parse::<Version>() {
                if !keep.contains(&v) {
                    fs::remove_dir_all(&path).at(&path)?;
                    removed.push(v);
                }
            }
        }
        Ok(removed)
    }
}

/// Extracts `tar.gz` or `zip` into `versions/<version>/` and switches `current`.
#[derive(Debug, Clone)]
pub struct ArchiveInstaller {
    root: InstallRoot,
    format: Format,
}

impl ArchiveInstaller {
    /// An installer for `format` (`TarGz` or `Zip`) into `root`.
    pub fn new(root: InstallRoot, format: Format) -> Self {
        Self { root, format }
    }
}

impl Installer for ArchiveInstaller {
    fn format(&self) -> Format {
        self.format
    }

    fn install(&self, staged: &Path, version: &Version) -> Result<Installed, InstallError> {
        let final_dir = self.root.version_dir(version);
        if self.root.current_version().as_ref() == Some(version) {
            return Ok(Installed {
                version: version.clone(),
                path: final_dir,
                previous: self.root.previous_version(),
            });
        }
        let versions = self.root.path().join(VERSIONS);
        let root_existed = self.root.path().exists();
        let versions_existed = versions.exists();
        let tmp = versions.join(format!(".tmp-{version}-{}", std::process::id()));
        let staged_ok = self.stage(staged, &versions, &tmp, &final_dir);
        if let Err(e) = staged_ok {
            // Leave the root as it was: no temporary folder, no folders we created.
            let _ = fs::remove_dir_all(&tmp);
            if !versions_existed {
                let _ = fs::remove_dir(&versions);
            }
            if !root_existed {
                let _ = fs::remove_dir(self.root.path());
            }
            return Err(e);
        }
        let previous = self.root.switch_to(version)?;
        self.root.prune()?;
        Ok(Installed {
            version: version.clone(),
            path: final_dir,
            previous,
        })
    }
}

impl ArchiveInstaller {
    /// Extracts into `tmp`, fsyncs, and renames it to `final_dir`.
    fn stage(
        &self,
        staged: &Path,
        versions: &Path,
        tmp: &Path,
        final_dir: &Path,
    ) -> Result<(), InstallError> {
        fs::create_dir_all(versions).at(versions)?;
        let _ = fs::remove_dir_all(tmp);
        fs::create_dir(tmp).at(tmp)?;
        match self.format {
            Format::Zip => extract_zip(staged, tmp)?,
            _ => extract_tar_gz(staged, tmp)?,
        }
        sync_dir(tmp);
        if final_dir.exists() {
            fs::remove_dir_all(final_dir).at(final_dir)?;
        }
        fs::rename(tmp, final_dir).at(final_dir)?;
        sync_dir(versions);
        Ok(())
    }
}

/// Replaces one AppImage file by an atomic rename, keeping its mode.
#[derive(Debug, Clone)]
pub struct AppImageInstaller {
    /// The AppImage to replace.
    pub target: PathBuf,
}

impl Installer for AppImageInstaller {
    fn format(&self) -> Format {
        Format::AppImage
    }

    fn install(&self, staged: &Path, version: &Version) -> Result<Installed, InstallError> {
        self.install_with(staged, version, |from, to| fs::rename(from, to))
    }
}

/// How the staged file reached the install folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// Renamed (same file system): no byte copied, the staged file is gone.
    Moved,
    /// Copied (another file system): the staged file stays where it was.
    Copied,
}

/// Puts `staged` at `tmp`: by `rename` when both are on one file system, else (the rename
/// fails with `EXDEV`) by a copy (`copy_file_range`, a reflink where the file system can).
fn place(
    staged: &Path,
    tmp: &Path,
    rename: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
) -> Result<Placed, InstallError> {
    match rename(staged, tmp) {
        Ok(()) => Ok(Placed::Moved),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            fs::copy(staged, tmp).at(tmp)?;
            Ok(Placed::Copied)
        }
        Err(e) => Err(PathIoError::new(tmp, e).into()),
    }
}

impl AppImageInstaller {
    /// The install, with the rename that moves the staged file (a test makes it cross file
    /// systems). The staged file is moved next to the target, given the target's mode, made
    /// durable by its one `fsync`, and renamed over the target; the folder is fsynced once.
    /// On failure the staged file is put back, so the install can be retried.
    fn install_with(
        &self,
        staged: &Path,
        version: &Version,
        rename: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
    ) -> Result<Installed, InstallError> {
        let dir = self.target.parent().unwrap_or_else(|| Path::new("."));
        fs::create_dir_all(dir).at(dir)?;
        let name = self
            .target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "app.AppImage".into());
        let mode = fs::metadata(&self.target)
            .map(|m| os::mode_of(&m))
            .unwrap_or(0o755);
        let tmp = dir.join(format!(".{name}.tmp"));
        let _ = fs::remove_file(&tmp);
        let placed = place(staged, &tmp, rename)?;
        let switched = self.switch(&tmp, dir, &name, mode);
        if let Err(e) = switched {
            let _ = match placed {
                Placed::Moved => fs::rename(&tmp, staged),
                Placed::Copied => fs::remove_file(&tmp),
            };
            return Err(e);
        }
        Ok(Installed {
            version: version.clone(),
            path: self.target.clone(),
            previous: None,
        })
    }

    /// Makes `tmp` durable with the target's mode, keeps the old file as `<name>.previous`
    /// and renames `tmp` over the target.
    fn switch(&self, tmp: &Path, dir: &Path, name: &str, mode: u32) -> Result<(), InstallError> {
        let f = File::open(tmp).at(tmp)?;
        os::set_file_mode(&f, mode).at(tmp)?;
        f.sync_all().at(tmp)?;
        let prev = dir.join(format!("{name}.previous"));
        if self.target.exists() {
            let _ = fs::remove_file(&prev);
            fs::hard_link(&self.target, &prev).at(&prev)?;
        }
        fs::rename(tmp, &self.target).at(&self.target)?;
        sync_dir(dir);
        Ok(())
    }
}

/// Formats that cannot be applied on this platform.
///
/// Plans, per format:
/// * **dmg** (macOS): mount with `hdiutil attach -nobrowse -readonly`, verify the code
///   signature of the `.app` inside (`codesign --verify --deep --strict`, same Team ID as the
///   running app), copy it beside the running bundle, swap with `rename`/`exchangedata`
///   semantics (`renamex_np(RENAME_SWAP)`), detach.
/// * **nsis** (Windows): verify the Authenticode signature (same publisher as the running
///   app), run the installer with `/S --updated` on quit from a detached process; the
///   previous version is kept by the installer's per-version folder layout.
/// * **deb** / **rpm** (Linux packages): handing the file to the system package manager
///   needs root (`pkexec apt install ./file.deb` / `pkexec dnf install ./file.rpm`); the
///   updater only downloads and verifies, and tells the app to ask the user.
#[derive(Debug, Clone)]
pub struct UnsupportedInstaller {
    /// The format.
    pub format: Format,
}

impl Installer for UnsupportedInstaller {
    fn format(&self) -> Format {
        self.format
    }

    fn install(&self, _staged: &Path, _version: &Version) -> Result<Installed, InstallError> {
        Err(InstallError::Unsupported {
            format: self.format,
            platform: std::env::consts::OS.to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Platform file operations (modes and symlinks are Unix; elsewhere links are refused).

mod os {
    use std::fs::{self, File};
    use std::io;
    use std::path::Path;

    #[cfg(unix)]
    pub(crate) fn symlink(target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }
    #[cfg(not(unix))]
    pub fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "symbolic links are only installed on Unix",
        ))
    }

    #[cfg(unix)]
    pub(crate) fn mode_of(m: &fs::Metadata) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o7777
    }
    #[cfg(not(unix))]
    pub fn mode_of(_m: &fs::Metadata) -> u32 {
        0o755
    }

    #[cfg(unix)]
    pub(crate) fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    pub fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
        Ok(())
    }

    #[cfg(unix)]
    pub(crate) fn set_file_mode(f: &File, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    pub fn set_file_mode(_f: &File, _mode: u32) -> io::Result<()> {
        Ok(())
    }

    /// A new file (never an existing one, never through a link), private until complete.
    pub(crate) fn create_new_private(path: &Path) -> io::Result<File> {
        let mut o = fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(path)
    }
}

// ---------------------------------------------------------------------------------------
// Safe extraction.

/// Tracks what was extracted, to refuse entries that go through links.
#[derive(Default)]
struct Extracted {
    symlinks: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
}

fn unsafe_entry(entry: &str, reason: &str) -> InstallError {
    InstallError::UnsafeEntry {
        entry: entry.to_string(),
        reason: reason.to_string(),
    }
}

/// A relative, normalised path of an entry, refusing `..`, absolute paths and prefixes.
pub fn sanitize_entry_path(raw: &str) -> Result<PathBuf, InstallError> {
    if raw.contains('\0') {
        return Err(unsafe_entry(raw, "contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_entry(raw, "contains '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(raw, "is an absolute path"))
            }
        }
    }
    if raw.contains('\\') {
        return Err(unsafe_entry(raw, "contains a backslash"));
    }
    Ok(out)
}

impl Extracted {
    /// Refuses a path that passes through (or lands on) an extracted symlink.
    fn check_not_through_link(&self, raw: &str, rel: &Path) -> Result<(), InstallError> {
        for anc in rel.ancestors() {
            if anc.as_os_str().is_empty() {
                continue;
            }
            if self.symlinks.contains(anc) {
                return Err(unsafe_entry(
                    raw,
                    "goes through a symlink extracted earlier",
                ));
            }
        }
        Ok(())
    }

    /// Checks a symlink's target stays inside the root (lexically, from its folder) and does
    /// not pass through a symlink extracted earlier (whose `..` would resolve elsewhere).
    fn check_link_target(&self, raw: &str, rel: &Path, target: &Path) -> Result<(), InstallError> {
        if target.is_absolute() {
            return Err(unsafe_entry(raw, "is a link to an absolute path"));
        }
        let mut at: PathBuf = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        for c in target.components() {
            match c {
                Component::Normal(s) => {
                    at.push(s);
                    if self.symlinks.contains(&at) {
                        return Err(unsafe_entry(raw, "is a link through another link"));
                    }
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    if !at.pop() {
                        return Err(unsafe_entry(raw, "is a link pointing outside the archive"));
                    }
                }
                _ => return Err(unsafe_entry(raw, "is a link to an absolute path")),
            }
        }
        Ok(())
    }
}

fn create_parent(root: &Path, rel: &Path) -> Result<PathBuf, InstallError> {
    let dest = root.join(rel);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    Ok(dest)
}

fn write_file(
    root: &Path,
    rel: &Path,
    mode: u32,
    reader: &mut dyn Read,
) -> Result<(), InstallError> {
    let dest = create_parent(root, rel)?;
    // create_new: never follows or overwrites an existing entry (duplicate entries refused).
    let mut f = os::create_new_private(&dest).at(&dest)?;
    std::io::copy(reader, &mut f).at(&dest)?;
    f.flush().at(&dest)?;
    os::set_file_mode(&f, mode & 0o777).at(&dest)?;
    f.sync_all().at(&dest)?;
    Ok(())
}

/// Extracts a `.tar.gz` safely into the empty folder `dest`; also the tar inside one (what a
/// delta patch produces, verified against the signed manifest's `resultSha256`), told apart
/// by the gzip magic bytes, so a patched update is not recompressed to be installed.
pub fn extract_tar_gz(archive: &Path, dest: &Path) -> Result<(), InstallError> {
    let f = File::open(archive).at(archive)?;
    let mut buffered = std::io::BufReader::with_capacity(1 << 20, f);
    let gzipped = std::io::BufRead::fill_buf(&mut buffered)
        .at(archive)?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut ar = tar::Archive::new(reader);
    let corrupt = |e: std::io::Error| InstallError::Corrupt {
        path: archive.to_path_buf(),
        source: e.into(),
    };
    let mut seen = Extracted::default();
    for entry in ar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = entry.path_bytes();
        let raw = String::from_utf8_lossy(&raw_path).to_string();
        let rel = sanitize_entry_path(&raw)?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                continue; // "./"
            }
            return Err(unsafe_entry(&raw, "has an empty path"));
        }
        seen.check_not_through_link(&raw, &rel)?;
        let mode = entry.header().mode().unwrap_or(0o644);
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                write_file(dest, &rel, mode, &mut entry)?;
                seen.files.insert(rel);
            }
            tar::EntryType::Directory => {
                let d = dest.join(&rel);
                fs::create_dir_all(&d).at(&d)?;
                os::set_mode(&d, (mode & 0o777) | 0o700).at(&d)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(|| unsafe_entry(&raw, "is a link without a target"))?
                    .into_owned();
                seen.check_link_target(&raw, &rel, &target)?;
                let d = create_parent(dest, &rel)?;
                os::symlink(&target, &d).at(&d)?;
                seen.symlinks.insert(rel);
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(|| unsafe_entry(&raw, "is a hard link without a target"))?;
                let t = sanitize_entry_path(&target.to_string_lossy()).map_err(|_| {
                    unsafe_entry(&raw, "is a hard link pointing outside the archive")
                })?;
                if !seen.files.contains(&t) {
                    return Err(unsafe_entry(
                        &raw,
                        "is a hard link to something other than an earlier regular file",
                    ));
                }
                let d = create_parent(dest, &rel)?;
                fs::hard_link(dest.join(&t), &d).at(&d)?;
                seen.files.insert(rel);
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(unsafe_entry(
                    &raw,
                    &format!(
                    "has a refused type ({other:?}: devices, fifos and others are never extracted)"
                ),
                ))
            }
        }
    }
    Ok(())
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

/// Extracts a `.zip` safely into the empty folder `dest`.
pub fn extract_zip(archive: &Path, dest: &Path) -> Result<(), InstallError> {
    let f = File::open(archive).at(archive)?;
    let corrupt = |e: zip::result::ZipError| InstallError::Corrupt {
        path: archive.to_path_buf(),
        source: e.into(),
    };
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(corrupt)?;
    let mut seen = Extracted::default();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).map_err(corrupt)?;
        let raw = file.name().map_err(corrupt)?.to_string();
        let rel = sanitize_entry_path(&raw)?;
        if rel.as_os_str().is_empty() {
            return Err(unsafe_entry(&raw, "has an empty path"));
        }
        seen.check_not_through_link(&raw, &rel)?;
        let unix = file.unix_mode();
        let kind = unix.map(|m| m & S_IFMT).filter(|k| *k != 0);
        let is_dir = file.is_dir() || kind == Some(S_IFDIR);
        match kind {
            Some(S_IFLNK) => {
                let mut target = String::new();
                file.read_to_string(&mut target)
                    .map_err(|e| InstallError::Corrupt {
                        path: archive.to_path_buf(),
                        source: e.into(),
                    })?;
                let target = PathBuf::from(target);
                seen.check_link_target(&raw, &rel, &target)?;
                let d = create_parent(dest, &rel)?;
                os::symlink(&target, &d).at(&d)?;
                seen.symlinks.insert(rel);
            }
            Some(k) if k != S_IFREG && k != S_IFDIR => {
                return Err(unsafe_entry(
                    &raw,
                    "has a refused type (devices, fifos and sockets are never extracted)",
                ));
            }
            _ if is_dir => {
                let d = dest.join(&rel);
                fs::create_dir_all(&d).at(&d)?;
            }
            _ => {
                let mode = unix.unwrap_or(0o644);
                write_file(dest, &rel, mode, &mut file)?;
                seen.files.insert(rel);
            }
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).at(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    ));
    let mut f = File::create(&tmp).at(&tmp)?;
    f.write_all(bytes).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    fs::rename(&tmp, path).at(path)?;
    sync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_sanitized() {
        assert_eq!(
            sanitize_entry_path("./a/b/../c").err().map(|e| e.code()),
            Some("ERR_UPDATER_UNSAFE_ARCHIVE")
        );
        assert!(sanitize_entry_path("/etc/passwd").is_err());
        assert!(sanitize_entry_path("a\\..\\b").is_err());
        assert_eq!(
            sanitize_entry_path("./app/bin").expect("ok"),
            PathBuf::from("app/bin")
        );
    }

    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// An install root holding an old AppImage (mode 0750) and a staged new one.
    fn appimage_case() -> (tempfile::TempDir, AppImageInstaller, PathBuf) {
        let t = tempfile::tempdir().expect("tmp");
        let target = t.path().join("install/app.AppImage");
        fs::create_dir_all(t.path().join("install")).expect("mkdir");
        fs::write(&target, b"old").expect("w");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o750)).expect("chmod");
        let staged = t.path().join("staging/app.AppImage");
        fs::create_dir_all(t.path().join("staging")).expect("mkdir");
        fs::write(&staged, b"new").expect("w");
        (t, AppImageInstaller { target }, staged)
    }

    #[test]
    fn an_appimage_on_the_same_file_system_is_renamed_not_copied() {
        let (t, i, staged) = appimage_case();
        let inode = fs::metadata(&staged).expect("m").ino();
        i.install(&staged, &Version::new(0, 2, 0)).expect("install");
        let m = fs::metadata(&i.target).expect("m");
        assert_eq!(m.ino(), inode, "the staged file itself is installed");
        assert_eq!(m.permissions().mode() & 0o777, 0o750);
        assert!(!staged.exists(), "moved, not copied");
        assert_eq!(fs::read(&i.target).expect("r"), b"new");
        let prev = t.path().join("install/app.AppImage.previous");
        assert_eq!(fs::read(prev).expect("r"), b"old");
    }

    #[test]
    fn across_file_systems_an_appimage_is_copied() {
        let (_t, i, staged) = appimage_case();
        let inode = fs::metadata(&staged).expect("m").ino();
        let exdev = |_: &Path, _: &Path| Err(std::io::ErrorKind::CrossesDevices.into());
        let done = i
            .install_with(&staged, &Version::new(0, 2, 0), exdev)
            .expect("install");
        assert_eq!(done.path, i.target);
        let m = fs::metadata(&i.target).expect("m");
        assert_ne!(m.ino(), inode, "a copy");
        assert_eq!(m.permissions().mode() & 0o777, 0o750);
        assert_eq!(fs::read(&i.target).expect("r"), b"new");
        assert_eq!(
            fs::read(&staged).expect("r"),
            b"new",
            "the staged file stays"
        );
    }

    #[test]
    fn a_failed_appimage_install_puts_the_staged_file_back() {
        let (t, i, staged) = appimage_case();
        // `<name>.previous` is a folder: keeping the old file fails after the move.
        fs::create_dir(t.path().join("install/app.AppImage.previous")).expect("mkdir");
        fs::write(t.path().join("install/app.AppImage.previous/x"), b"").expect("w");
        let e = i.install(&staged, &Version::new(0, 2, 0));
        assert_eq!(e.err().map(|e| e.code()), Some("ERR_UPDATER_IO"));
        assert_eq!(fs::read(&staged).expect("r"), b"new", "back in staging");
        assert_eq!(fs::read(&i.target).expect("r"), b"old", "nothing installed");
        assert!(!t.path().join("install/.app.AppImage.tmp").exists());
        // Another error than EXDEV is not papered over by a copy.
        let denied = |_: &Path, _: &Path| Err(std::io::ErrorKind::PermissionDenied.into());
        assert!(i
            .install_with(&staged, &Version::new(0, 2, 0), denied)
            .is_err());
        assert!(staged.exists());
    }

    #[test]
    fn link_targets_must_stay_inside() {
        let ok = |rel: &str, t: &str| {
            Extracted::default()
                .check_link_target(rel, Path::new(rel), Path::new(t))
                .is_ok()
        };
        assert!(ok("a/b/link", "../c"));
        assert!(ok("a/link", "b/c"));
        assert!(!ok("a/link", "../../c"));
        assert!(!ok("link", "/etc"));
        assert!(!ok("link", ".."));
    }
}
