//! The update tree on disk: regular files inside one root, and nothing else.
//!
//! Owns [`open`] (one file, by its path relative to the root) and [`walk`] (every regular
//! file under the root), used by `railgun serve` for `/updates/…` and by
//! `railgun release export`.
//!
//! On Unix a path is resolved one component at a time from a descriptor of the root
//! (`openat` with `O_NOFOLLOW`), so what is checked is what is opened: no symbolic link
//! below the root is ever followed, wherever it points and at whatever depth (a link
//! swapped in between a check and an open fails the open instead). The last component is
//! looked at first (`fstatat`, no follow) and opened only when it is a regular file, then
//! opened non-blocking and checked again on the descriptor (`fstat`, same inode): a FIFO,
//! socket or device is never opened for reading and never blocks. Elsewhere the same rules
//! are applied by path (no link on the way, the canonical path inside the canonical root,
//! a regular file at the end), without the race protection.
//!
//! It refuses, as [`TreeError::NotFound`] (which carries no path): missing files, symbolic
//! links, anything but a directory on the way or a regular file at the end, and names
//! that are not one plain component (empty, `.`, `..`, or holding `/`, `\` or NUL) or that
//! the file system refuses (too long, invalid). Only genuine I/O faults are
//! [`TreeError::Io`]. The root itself may be a symbolic link (the operator chose it).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Deepest folder [`walk`] descends into (the published tree is four levels deep).
pub const MAX_DEPTH: usize = 32;

/// Why nothing is served from a path (no path kept: the name may come from a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No such file or folder (or the file system refuses the name).
    Missing,
    /// A symbolic link on the way or at the end.
    Link,
    /// Not a regular file (a folder, FIFO, socket or device), or something other than a
    /// folder on the way.
    NotRegular,
    /// A name that is not one plain path component.
    BadName,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "no such file",
            Self::Link => "a symbolic link (never followed)",
            Self::NotRegular => "not a regular file",
            Self::BadName => "not a plain file name",
        })
    }
}

/// Why a file of the tree could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// No regular file inside the root at that path (answered 404, not logged).
    #[error("no regular file inside the tree: {0}")]
    NotFound(Miss),
    /// A real I/O fault (the disk, the descriptor limit): the path relative to the root.
    #[error("{rel}: {source}")]
    Io {
        /// The path relative to the root.
        rel: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A regular file of the tree, open for reading.
#[derive(Debug)]
pub struct TreeFile {
    /// The open file.
    pub file: File,
    /// Its size.
    pub len: u64,
    /// Its modification time, when the file system gives one.
    pub modified: Option<SystemTime>,
    /// Its inode number (0 where there is none).
    pub inode: u64,
}

/// Opens the regular file at `rel` (plain components) under `root` (see the module docs).
pub fn open(root: &Path, rel: &[&str]) -> Result<TreeFile, TreeError> {
    if rel.is_empty() || !rel.iter().all(|c| plain(c)) {
        return Err(TreeError::NotFound(Miss::BadName));
    }
    imp::open(root, rel)
}

/// Every regular file under `root`, as paths relative to it, skipping entries `skip`
/// names (and everything below them); symbolic links and special files are never
/// followed and go to [`Walked::refused`]. Folders deeper than [`MAX_DEPTH`] are refused.
pub fn walk(root: &Path, skip: &dyn Fn(&str) -> bool) -> Result<Walked, TreeError> {
    let mut out = Walked::default();
    imp::walk(root, &mut Vec::new(), skip, &mut out)?;
    out.files.sort();
    out.refused.sort();
    Ok(out)
}

/// What [`walk`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walked {
    /// Regular files (relative paths, sorted).
    pub files: Vec<PathBuf>,
    /// Links, special files, names that are not UTF-8 and folders past [`MAX_DEPTH`]
    /// (relative paths, sorted): not followed.
    pub refused: Vec<PathBuf>,
}

/// One plain path component.
pub fn plain(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0'])
}

/// Whether `e` is a lookup error (missing, not a folder, a link, a name the file system
/// refuses, no permission): the answer is "not found", not a fault.
pub fn is_lookup_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::NotFound | K::PermissionDenied | K::InvalidInput
    ) {
        return true;
    }
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        if let Some(code) = e.raw_os_error() {
            let errno = Errno::from_raw_os_error(code);
            return [
                Errno::NOENT,
                Errno::NOTDIR,
                Errno::LOOP,
                Errno::MLINK, // FreeBSD's answer to O_NOFOLLOW on a link
                Errno::NAMETOOLONG,
                Errno::ACCESS,
                Errno::PERM,
                Errno::INVAL,
                Errno::ILSEQ,
                Errno::NXIO,
                Errno::ISDIR,
            ]
            .contains(&errno);
        }
    }
    false
}

fn rel_path(rel: &[&str]) -> PathBuf {
    rel.iter().collect()
}

/// A lookup error as [`TreeError::NotFound`] (a link when `ELOOP`), anything else as I/O.
fn classify(e: std::io::Error, rel: &[&str]) -> TreeError {
    #[cfg(unix)]
    {
        let errno = e.raw_os_error().map(rustix::io::Errno::from_raw_os_error);
        if errno == Some(rustix::io::Errno::LOOP) || errno == Some(rustix::io::Errno::MLINK) {
            return TreeError::NotFound(Miss::Link);
        }
        if errno == Some(rustix::io::Errno::NOTDIR) {
            return TreeError::NotFound(Miss::NotRegular);
        }
    }
    if is_lookup_error(&e) {
        TreeError::NotFound(Miss::Missing)
    } else {
        TreeError::Io {
            rel: rel_path(rel),
            source: e,
        }
    }
}

#[cfg(unix)]
mod imp {
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use rustix::fs::{fstat, openat, statat, AtFlags, Dir, FileType, Mode, OFlags, CWD};

    use super::{classify, Miss, TreeError, TreeFile, Walked, MAX_DEPTH};

    const DIR_FLAGS: OFlags = OFlags::RDONLY
        .union(OFlags::DIRECTORY)
        .union(OFlags::CLOEXEC)
        .union(OFlags::NOFOLLOW);

    fn open_root(root: &Path, rel: &[&str]) -> Result<OwnedFd, TreeError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        openat(CWD, root, flags, Mode::empty()).map_err(|e| classify(e.into(), rel))
    }

    /// The folder `name` in `dir`, never through a link (`O_NOFOLLOW` on a link to a
    /// folder fails with `ENOTDIR` or `ELOOP`; a second look tells which it was).
    fn open_dir(dir: &OwnedFd, name: &str, rel: &[&str]) -> Result<OwnedFd, TreeError> {
        openat(dir, name, DIR_FLAGS, Mode::empty()).map_err(|e| {
            let link = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
            if link {
                TreeError::NotFound(Miss::Link)
            } else {
                classify(e.into(), rel)
            }
        })
    }

    pub(super) fn open(root: &Path, rel: &[&str]) -> Result<TreeFile, TreeError> {
        let Some((last, dirs)) = rel.split_last() else {
            return Err(TreeError::NotFound(Miss::BadName));
        };
        let mut dir = open_root(root, rel)?;
        for d in dirs {
            dir = open_dir(&dir, d, rel)?;
        }
        let seen =
            statat(&dir, *last, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| classify(e.into(), rel))?;
        match FileType::from_raw_mode(seen.st_mode) {
            FileType::RegularFile => {}
            FileType::Symlink => return Err(TreeError::NotFound(Miss::Link)),
            _ => return Err(TreeError::NotFound(Miss::NotRegular)),
        }
        // Non-blocking and no controlling terminal: were a FIFO or device renamed in since
        // the look, opening it neither waits nor takes the terminal; fstat then refuses it.
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = openat(&dir, *last, flags, Mode::empty()).map_err(|e| classify(e.into(), rel))?;
        let st = fstat(fd.as_fd()).map_err(|e| classify(e.into(), rel))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
            || st.st_ino != seen.st_ino
            || st.st_dev != seen.st_dev
        {
            return Err(TreeError::NotFound(Miss::NotRegular));
        }
        let file = std::fs::File::from(fd);
        let meta = file.metadata().map_err(|e| classify(e, rel))?;
        Ok(TreeFile {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
            file,
        })
    }

    pub(super) fn walk(
        root: &Path,
        stack: &mut Vec<String>,
        skip: &dyn Fn(&str) -> bool,
        out: &mut Walked,
    ) -> Result<(), TreeError> {
        let dir = open_root(root, &[])?;
        walk_fd(&dir, stack, skip, out)
    }

    fn walk_fd(
        dir: &OwnedFd,
        stack: &mut Vec<String>,
        skip: &dyn Fn(&str) -> bool,
        out: &mut Walked,
    ) -> Result<(), TreeError> {
        let io = |e: rustix::io::Errno, stack: &[String]| TreeError::Io {
            rel: stack.iter().collect(),
            source: e.into(),
        };
        let mut entries = Vec::new();
        for entry in Dir::read_from(dir).map_err(|e| io(e, stack))? {
            let entry = entry.map_err(|e| io(e, stack))?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(raw) else {
                let mut p: PathBuf = stack.iter().collect();
                p.push(String::from_utf8_lossy(raw).as_ref());
                out.refused.push(p);
                continue;
            };
            if skip(name) {
                continue;
            }
            let ty = match entry.file_type() {
                FileType::Unknown => match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(e) if super::is_lookup_error(&e.into()) => continue, // gone
                    Err(e) => return Err(io(e, stack)),
                },
                t => t,
            };
            entries.push((name.to_string(), ty));
        }
        for (name, ty) in entries {
            let mut rel: PathBuf = stack.iter().collect();
            rel.push(&name);
            match ty {
                FileType::RegularFile => out.files.push(rel),
                FileType::Directory if stack.len() < MAX_DEPTH => {
                    let sub = match openat(dir, name.as_str(), DIR_FLAGS, Mode::empty()) {
                        Ok(fd) => fd,
                        // Replaced by a link or removed since the listing.
                        Err(e) if super::is_lookup_error(&e.into()) => {
                            out.refused.push(rel);
                            continue;
                        }
                        Err(e) => return Err(io(e, stack)),
                    };
                    stack.push(name);
                    let r = walk_fd(&sub, stack, skip, out);
                    stack.pop();
                    r?;
                }
                _ => out.refused.push(rel),
            }
        }
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    use std::path::{Path, PathBuf};

    use super::{classify, Miss, TreeError, TreeFile, Walked, MAX_DEPTH};

    pub(super) fn open(root: &Path, rel: &[&str]) -> Result<TreeFile, TreeError> {
        let mut path = root.to_path_buf();
        for (i, c) in rel.iter().enumerate() {
            if c.contains(':') {
                return Err(TreeError::NotFound(Miss::BadName)); // drive or stream names
            }
            path.push(c);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| classify(e, rel))?;
            if meta.file_type().is_symlink() {
                return Err(TreeError::NotFound(Miss::Link));
            }
            let last = i + 1 == rel.len();
            if (last && !meta.is_file()) || (!last && !meta.is_dir()) {
                return Err(TreeError::NotFound(Miss::NotRegular));
            }
        }
        let canon_root = std::fs::canonicalize(root).map_err(|e| classify(e, rel))?;
        let canon = std::fs::canonicalize(&path).map_err(|e| classify(e, rel))?;
        if !canon.starts_with(&canon_root) {
            return Err(TreeError::NotFound(Miss::Link));
        }
        let file = std::fs::File::open(&canon).map_err(|e| classify(e, rel))?;
        let meta = file.metadata().map_err(|e| classify(e, rel))?;
        if !meta.is_file() {
            return Err(TreeError::NotFound(Miss::NotRegular));
        }
        Ok(TreeFile {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: 0,
            file,
        })
    }

    pub(super) fn walk(
        root: &Path,
        stack: &mut Vec<String>,
        skip: &dyn Fn(&str) -> bool,
        out: &mut Walked,
    ) -> Result<(), TreeError> {
        let rel: PathBuf = stack.iter().collect();
        let names: Vec<&str> = stack.iter().map(String::as_str).collect();
        let entries = std::fs::read_dir(root.join(&rel)).map_err(|e| classify(e, &names))?;
        for e in entries {
            let e = e.map_err(|e| classify(e, &names))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                out.refused.push(rel.join(e.file_name()));
                continue;
            };
            if skip(&name) {
                continue;
            }
            let ty = e.file_type().map_err(|e| classify(e, &names))?;
            if ty.is_file() {
                out.files.push(rel.join(&name));
            } else if ty.is_dir() && stack.len() < MAX_DEPTH {
                stack.push(name);
                let r = walk(root, stack, skip, out);
                stack.pop();
                r?;
            } else {
                out.refused.push(rel.join(&name));
            }
        }
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn opens_regular_files_and_refuses_links_and_special_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("a/b")).expect("dir");
        fs::write(root.join("a/b/f.json"), b"{}").expect("file");
        fs::write(dir.path().join("secret"), b"s").expect("secret");
        symlink(dir.path().join("secret"), root.join("a/link")).expect("link");
        symlink(root.join("a/b"), root.join("a/dirlink")).expect("link");

        let f = open(&root, &["a", "b", "f.json"]).expect("open");
        assert_eq!(f.len, 2);
        let miss = |rel: &[&str]| match open(&root, rel) {
            Err(TreeError::NotFound(m)) => m,
            other => panic!("{rel:?}: {other:?}"),
        };
        assert_eq!(miss(&["a", "link"]), Miss::Link);
        assert_eq!(miss(&["a", "dirlink", "f.json"]), Miss::Link);
        assert_eq!(miss(&["a", "b"]), Miss::NotRegular);
        assert_eq!(miss(&["a", "b", "f.json", "x"]), Miss::NotRegular);
        assert_eq!(miss(&["a", "missing"]), Miss::Missing);
        assert_eq!(miss(&["a", &"n".repeat(300)]), Miss::Missing);
        for bad in [
            &[][..],
            &[".."],
            &["a", "."],
            &["a/b"],
            &["a\\b"],
            &["a\0"],
            &[""],
        ] {
            assert_eq!(miss(bad), Miss::BadName, "{bad:?}");
        }
    }

    #[test]
    fn walk_lists_regular_files_and_refuses_links() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).expect("dir");
        fs::create_dir_all(root.join(".hidden")).expect("dir");
        fs::write(root.join("a/b/f"), b"1").expect("file");
        fs::write(root.join("top"), b"1").expect("file");
        fs::write(root.join(".hidden/x"), b"1").expect("file");
        symlink("b", root.join("a/link")).expect("link");
        let w = walk(root, &|n| n.starts_with('.')).expect("walk");
        assert_eq!(w.files, vec![PathBuf::from("a/b/f"), PathBuf::from("top")]);
        assert_eq!(w.refused, vec![PathBuf::from("a/link")]);
    }
}
