//! The two helpers every error of the workspace uses: [`chain`], which prints an error and
//! its sources on one line, and [`IoContext::at`], which names the path an I/O error is
//! about.
//!
//! Errors keep their cause as a `#[source]` and the path or URL they concern as a field (as
//! awslabs' tough does); this module refuses to hold error *types* of its own beyond the
//! [`PathIoError`] that carries a path to a module's `Io { path, source }` variant.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};

/// An error and its sources on one line, `: `-separated. A source whose text the line
/// already holds is skipped (errors that print their cause are not repeated), and line
/// breaks become spaces.
///
/// ```
/// let e = std::io::Error::other("disk on fire");
/// assert_eq!(railgun_core::error::chain(&e).to_string(), "disk on fire");
/// ```
pub fn chain<'a>(e: &'a (dyn StdError + 'static)) -> Chain<'a> {
    Chain(e)
}

/// The [`Display`](fmt::Display) of [`chain`].
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut src = self.0.source();
        while let Some(c) = src {
            let t = c.to_string();
            if !t.is_empty() && !line.contains(&t) {
                line.push_str(": ");
                line.push_str(&t);
            }
            src = c.source();
        }
        f.write_str(&line.replace(['\r', '\n'], " "))
    }
}

/// An I/O error and the path it is about; each module's error converts it into its own
/// `Io { path, source }` variant (`From<PathIoError>`), so a call site reads
/// `fs::read(&p).at(&p)?`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct PathIoError {
    /// The path.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

impl PathIoError {
    /// `source` about `path`.
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            path: path.into(),
            source,
        }
    }
}

/// Names the path of an I/O result: `.at(path)`.
pub trait IoContext<T> {
    /// The error, if any, about `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T, PathIoError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, PathIoError> {
        self.map_err(|source| PathIoError::new(path.as_ref(), source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("top")]
    struct Wraps(#[source] Repeats);

    #[test]
    fn chain_joins_sources_once_on_one_line() {
        let e = Wraps(Repeats(std::io::Error::other("line one\nline two")));
        assert_eq!(
            chain(&e).to_string(),
            "top: outer: line one line two",
            "the io error is printed by its parent already"
        );
        let plain = std::io::Error::other("plain");
        assert_eq!(chain(&plain).to_string(), "plain");
    }

    #[test]
    fn at_names_the_path_and_keeps_the_cause() {
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("nope.json");
        let e = std::fs::read(&missing).at(&missing).expect_err("missing");
        assert_eq!(e.path, missing);
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        assert!(e.to_string().starts_with(&missing.display().to_string()));
        assert!(e.source().is_some());
        assert!(std::fs::read(dir.path()).at(dir.path()).is_err());
    }
}
