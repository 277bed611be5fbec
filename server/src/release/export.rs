//! `railgun release export`: a verified copy of the update tree for a CDN.
//!
//! Owns [`verify_tree`] and [`export`]. Every document is checked the way a client checks
//! it, signature before parse: each `ROOT/<app>/releases/<version>/manifest.json` verifies
//! with the release keys, names the app and version of its folder, and every relative
//! artifact beside it has the signed size and SHA-256; each `ROOT/<app>/<channel>/
//! channel.json` verifies with the rollout keys, names its app and channel, has not
//! expired, and its release (and fallback) pointer names a verified manifest of the tree
//! whose SHA-256 is the pointer's `manifestSha256`.
//!
//! Only what was verified is exported (documents from the very bytes that were verified,
//! artifacts re-hashed while copied), into `OUT.tmp-…` beside `OUT`, renamed into place at
//! the end. It refuses the whole export on the first bad document (naming the file) and
//! then leaves `OUT` untouched; it refuses files that no manifest names (listed as
//! skipped), an `OUT` inside `ROOT` or containing it, and a non-empty `OUT` that is not a
//! previous export. The tree is walked and read through [`crate::serve::tree`], as
//! `railgun serve` reads it: regular files inside the root only, so a symbolic link (to a
//! file or a folder, at any depth, even one swapped in after the walk) is never followed
//! and a FIFO never opened for reading.
//!
//! A tree in an object store (`railgun serve --object-store URL`) is exported by
//! [`export_objects`]: its objects are first copied into a folder beside `OUT`
//! (`OUT.src-…`, removed at the end), then that snapshot is verified and exported as a local
//! tree is, so what is checked is what is written even while servers keep publishing. It
//! refuses a store that holds no object at all (a wrong bucket or prefix would otherwise
//! replace a previous export with an empty one).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use railgun_core::error::{IoContext, PathIoError};
use railgun_core::trust::{DsseError, SignedDocument, TrustedKeys};
use railgun_core::update::{
    Artifact, ChannelState, DocumentError, ReleaseManifest, ReleasePointer,
};
use sha2::{Digest, Sha256};

use crate::serve::tree::{self, TreeError};

/// File written at the top of every export; marks a folder an export may replace.
pub const EXPORT_MARKER: &str = ".railgun-export";

/// Why a tree was not exported. Each variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A document's signature does not verify with the trusted keys.
    #[error("{path}: signature: {source}")]
    Signature {
        /// The document.
        path: PathBuf,
        /// Why.
        #[source]
        source: DsseError,
    },
    /// A verified document does not parse or validate.
    #[error("{path}: {source}")]
    Document {
        /// The document.
        path: PathBuf,
        /// Why.
        #[source]
        source: DocumentError,
    },
    /// A document is in the wrong place or disagrees with the documents it points to.
    #[error("{path}: {reason}")]
    Inconsistent {
        /// The document.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A channel state points at a manifest whose bytes are not the signed digest.
    #[error(
        "{channel}: manifest {manifest} has sha256 {actual}, the channel state signs {expected}"
    )]
    ManifestDigest {
        /// The channel state.
        channel: PathBuf,
        /// The manifest.
        manifest: PathBuf,
        /// `manifestSha256` in the state.
        expected: String,
        /// Digest of the file.
        actual: String,
    },
    /// The channel state has expired: clients would refuse it.
    #[error("{path}: channel state expired at {expires_at}; publish a fresh one first")]
    Expired {
        /// The channel state.
        path: PathBuf,
        /// Its expiry.
        expires_at: DateTime<Utc>,
    },
    /// An artifact is missing or differs from its signed manifest.
    #[error("{path}: expected {expected_size} bytes sha256 {expected_sha256}, found {actual}")]
    Artifact {
        /// The artifact.
        path: PathBuf,
        /// Size in the manifest.
        expected_size: u64,
        /// Digest in the manifest.
        expected_sha256: String,
        /// What is there instead.
        actual: String,
    },
    /// A file the walk listed is no longer a regular file inside the tree (a link or a
    /// special file took its place).
    #[error("{path}: {source}")]
    Tree {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: TreeError,
    },
    /// The object store holding the tree failed, or holds nothing.
    #[error("object store {store}: {reason}")]
    Objects {
        /// The store's URL (without credentials) or the object.
        store: String,
        /// Why.
        reason: String,
        /// The store's error, when it failed.
        #[source]
        source: Option<object_store::Error>,
    },
    /// The destination cannot be used.
    #[error("{path}: {reason}")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl From<PathIoError> for ExportError {
    fn from(e: PathIoError) -> Self {
        ExportError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

/// The keys a tree is checked with.
#[derive(Debug, Clone)]
pub struct TreeKeys {
    /// Keys that sign release manifests.
    pub release: TrustedKeys,
    /// Keys that sign channel states.
    pub rollout: TrustedKeys,
}

/// One file to export, relative to the tree's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeFile {
    /// A verified document, exported from these bytes.
    Document {
        /// Path relative to the root.
        rel: PathBuf,
        /// The verified bytes.
        bytes: Vec<u8>,
    },
    /// An artifact: copied and re-hashed on the way.
    Artifact {
        /// Path relative to the root.
        rel: PathBuf,
        /// Signed size.
        size: u64,
        /// Signed SHA-256 (hex).
        sha256: String,
    },
    /// A file a manifest refers to without a digest (a Sigstore bundle: self-verifying).
    Companion {
        /// Path relative to the root.
        rel: PathBuf,
    },
}

/// A verified tree.
#[derive(Debug, Clone, Default)]
pub struct VerifiedTree {
    /// Everything to export.
    pub files: Vec<TreeFile>,
    /// Channel states verified (`app/channel`).
    pub channels: Vec<String>,
    /// Manifests verified (`app version`).
    pub releases: Vec<String>,
    /// Files not exported because nothing signed names them (relative paths).
    pub skipped: Vec<PathBuf>,
}

struct LoadedManifest {
    bytes: Vec<u8>,
    manifest: ReleaseManifest,
}

/// Verifies every document of the tree at `root` (see the module docs): the manifests
/// first, with the artifacts they sign, then the channel states and the manifests they
/// point at; whatever nothing signed names is skipped.
pub fn verify_tree(
    root: &Path,
    keys: &TreeKeys,
    now: DateTime<Utc>,
) -> Result<VerifiedTree, ExportError> {
    let all = walk(root)?;
    let mut v = TreeCheck {
        root,
        all: &all,
        out: VerifiedTree::default(),
        manifests: BTreeMap::new(),
        used: BTreeSet::new(),
    };
    for rel in &all {
        if let [app, "releases", version, "manifest.json"] = parts(rel)[..] {
            v.manifest(rel, app, version, &keys.release)?;
        }
    }
    for rel in &all {
        if let [app, channel, "channel.json"] = parts(rel)[..] {
            v.channel(rel, app, channel, &keys.rollout, now)?;
        }
    }
    let mut out = v.out;
    out.skipped = all.difference(&v.used).cloned().collect();
    Ok(out)
}

/// The components of a relative path (a component that is not UTF-8 matches nothing).
fn parts(rel: &Path) -> Vec<&str> {
    rel.iter().filter_map(|c| c.to_str()).collect()
}

/// What [`verify_tree`] has verified so far.
struct TreeCheck<'a> {
    root: &'a Path,
    /// Every regular file of the tree.
    all: &'a BTreeSet<PathBuf>,
    out: VerifiedTree,
    /// Verified manifests by relative path (what channel states may point at).
    manifests: BTreeMap<PathBuf, LoadedManifest>,
    /// Files that a verified document names.
    used: BTreeSet<PathBuf>,
}

impl TreeCheck<'_> {
    /// `<app>/releases/<version>/manifest.json`: signed by the release keys, for this app
    /// and version, its relative artifacts (and Sigstore bundles) present and as signed.
    fn manifest(
        &mut self,
        rel: &Path,
        app: &str,
        version: &str,
        keys: &TrustedKeys,
    ) -> Result<(), ExportError> {
        let path = self.root.join(rel);
        let (bytes, manifest) = read_signed::<ReleaseManifest>(self.root, rel, keys)?;
        if manifest.app != app || manifest.version.to_string() != version {
            return Err(ExportError::Inconsistent {
                path,
                reason: format!(
                    "signed for {} {} but stored as {app} {version}",
                    manifest.app, manifest.version
                ),
            });
        }
        let dir = rel.parent().unwrap_or(Path::new(""));
        for a in &manifest.artifacts {
            self.artifact(dir, &path, a)?;
        }
        for p in &manifest.patches {
            self.signed_file(dir, &path, &p.file, p.size, &p.sha256)?;
        }
        self.used.insert(rel.to_path_buf());
        self.out
            .releases
            .push(format!("{} {}", manifest.app, manifest.version));
        self.out.files.push(TreeFile::Document {
            rel: rel.to_path_buf(),
            bytes: bytes.clone(),
        });
        self.manifests
            .insert(rel.to_path_buf(), LoadedManifest { bytes, manifest });
        Ok(())
    }

    /// One artifact of the manifest at `manifest` (in `dir`): skipped when hosted
    /// elsewhere, else present with the signed size and SHA-256; its Sigstore bundle, when
    /// relative, present.
    fn artifact(&mut self, dir: &Path, manifest: &Path, a: &Artifact) -> Result<(), ExportError> {
        self.signed_file(dir, manifest, &a.url, a.size, &a.sha256)?;
        let Some(bundle) = &a.sigstore_bundle else {
            return Ok(());
        };
        let Some(name) = relative_name(bundle, manifest)? else {
            return Ok(());
        };
        let b_rel = dir.join(name);
        if !self.all.contains(&b_rel) {
            return Err(ExportError::Inconsistent {
                path: manifest.to_path_buf(),
                reason: format!("Sigstore bundle {name} is not in the tree"),
            });
        }
        if self.used.insert(b_rel.clone()) {
            self.out.files.push(TreeFile::Companion { rel: b_rel });
        }
        Ok(())
    }

    /// A file the manifest at `manifest` (in `dir`) signs by size and SHA-256 (an artifact
    /// or a delta patch): skipped when hosted elsewhere, else present and as signed.
    fn signed_file(
        &mut self,
        dir: &Path,
        manifest: &Path,
        url: &str,
        expected_size: u64,
        expected_sha256: &str,
    ) -> Result<(), ExportError> {
        let Some(name) = relative_name(url, manifest)? else {
            return Ok(()); // hosted elsewhere
        };
        let art_rel = dir.join(name);
        let mismatch = |actual: String| ExportError::Artifact {
            path: self.root.join(&art_rel),
            expected_size,
            expected_sha256: expected_sha256.to_string(),
            actual,
        };
        if !self.all.contains(&art_rel) {
            return Err(mismatch("no such file".into()));
        }
        let (size, sha256) = hash_file(self.root, &art_rel)?;
        if size != expected_size || sha256 != expected_sha256 {
            return Err(mismatch(format!("{size} bytes sha256 {sha256}")));
        }
        self.used.insert(art_rel.clone());
        self.out.files.push(TreeFile::Artifact {
            rel: art_rel,
            size,
            sha256,
        });
        Ok(())
    }

    /// `<app>/<channel>/channel.json`: signed by the rollout keys, for this app and
    /// channel, not expired, its release (and fallback) pointing at verified manifests.
    fn channel(
        &mut self,
        rel: &Path,
        app: &str,
        channel: &str,
        keys: &TrustedKeys,
        now: DateTime<Utc>,
    ) -> Result<(), ExportError> {
        let path = self.root.join(rel);
        let (bytes, state) = read_signed::<ChannelState>(self.root, rel, keys)?;
        if state.app != app || state.channel != channel {
            return Err(ExportError::Inconsistent {
                path,
                reason: format!(
                    "signed for {}/{} but stored as {app}/{channel}",
                    state.app, state.channel
                ),
            });
        }
        if state.expires_at <= now {
            return Err(ExportError::Expired {
                path,
                expires_at: state.expires_at,
            });
        }
        let dir = rel.parent().unwrap_or(Path::new(""));
        let pointers = std::iter::once(&state.release).chain(state.fallback.as_ref());
        for pointer in pointers {
            check_pointer(self.root, &path, dir, &state, pointer, &self.manifests)?;
        }
        self.used.insert(rel.to_path_buf());
        self.out
            .channels
            .push(format!("{}/{}", state.app, state.channel));
        self.out.files.push(TreeFile::Document {
            rel: rel.to_path_buf(),
            bytes,
        });
        Ok(())
    }
}

/// Reads the document at `rel`, verifies its signature with `keys` (before parsing), then
/// parses and validates it; returns the very bytes verified with the document.
fn read_signed<D: SignedDocument<Error = DocumentError>>(
    root: &Path,
    rel: &Path,
    keys: &TrustedKeys,
) -> Result<(Vec<u8>, D), ExportError> {
    let path = root.join(rel);
    let bytes = read_in_tree(root, rel)?;
    let verified =
        keys.verify(&bytes, D::PAYLOAD_TYPE)
            .map_err(|source| ExportError::Signature {
                path: path.clone(),
                source,
            })?;
    let doc = D::from_verified_payload(&verified.payload)
        .map_err(|source| ExportError::Document { path, source })?;
    Ok((bytes, doc))
}

fn check_pointer(
    root: &Path,
    channel_path: &Path,
    channel_dir: &Path,
    state: &ChannelState,
    pointer: &ReleasePointer,
    manifests: &BTreeMap<PathBuf, LoadedManifest>,
) -> Result<(), ExportError> {
    let inconsistent = |reason: String| ExportError::Inconsistent {
        path: channel_path.to_path_buf(),
        reason,
    };
    if pointer.manifest.contains("://") {
        return Err(inconsistent(format!(
            "release {} points outside the tree ({}); export a tree whose manifests are in it",
            pointer.version, pointer.manifest
        )));
    }
    let target = normalize(&channel_dir.join(&pointer.manifest)).ok_or_else(|| {
        inconsistent(format!(
            "manifest pointer {:?} leaves the tree",
            pointer.manifest
        ))
    })?;
    let Some(m) = manifests.get(&target) else {
        return Err(inconsistent(format!(
            "release {} points at {}, which is not a verified manifest of the tree",
            pointer.version,
            root.join(&target).display()
        )));
    };
    let actual = hex::encode(Sha256::digest(&m.bytes));
    if !actual.eq_ignore_ascii_case(&pointer.manifest_sha256) {
        return Err(ExportError::ManifestDigest {
            channel: channel_path.to_path_buf(),
            manifest: root.join(&target),
            expected: pointer.manifest_sha256.clone(),
            actual,
        });
    }
    if m.manifest.version != pointer.version || m.manifest.app != state.app {
        return Err(inconsistent(format!(
            "points at {} {} as {} {}",
            m.manifest.app, m.manifest.version, state.app, pointer.version
        )));
    }
    Ok(())
}

/// `a/b/../c` → `a/c`; `None` when it climbs above the start or is absolute.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The file name a relative URL names (`None` for a hosted `https://…` URL).
fn relative_name<'a>(url: &'a str, manifest: &Path) -> Result<Option<&'a str>, ExportError> {
    if url.contains("://") {
        return Ok(None);
    }
    if url.is_empty() || url.contains(['/', '\\']) || url.starts_with('.') {
        return Err(ExportError::Inconsistent {
            path: manifest.to_path_buf(),
            reason: format!("relative artifact URL {url:?} is not a plain file name"),
        });
    }
    Ok(Some(url))
}

/// Every regular file of the tree (relative), skipping dot-files and dot-folders
/// (temporaries); links and special files are listed in the log, never followed.
fn walk(root: &Path) -> Result<BTreeSet<PathBuf>, ExportError> {
    let walked = tree::walk(root, &|name| name.starts_with('.')).map_err(|e| tree_err(root, e))?;
    for rel in &walked.refused {
        tracing::warn!(
            path = %root.join(rel).display(),
            "not a regular file (a symbolic link or a special file); not exported"
        );
    }
    Ok(walked.files.into_iter().collect())
}

fn tree_err(root: &Path, e: TreeError) -> ExportError {
    match e {
        TreeError::Io { rel, source } => ExportError::Io {
            path: root.join(rel),
            source,
        },
        e @ TreeError::NotFound(_) => ExportError::Tree {
            path: root.to_path_buf(),
            source: e,
        },
    }
}

/// The regular file at `rel` inside `root`, open (see [`tree::open`]).
fn open_in_tree(root: &Path, rel: &Path) -> Result<fs::File, ExportError> {
    let path = root.join(rel);
    let parts: Option<Vec<&str>> = rel.iter().map(|c| c.to_str()).collect();
    let parts = parts.unwrap_or_default();
    tree::open(root, &parts)
        .map(|f| f.file)
        .map_err(|source| match source {
            TreeError::Io { source, .. } => ExportError::Io { path, source },
            source => ExportError::Tree { path, source },
        })
}

fn read_in_tree(root: &Path, rel: &Path) -> Result<Vec<u8>, ExportError> {
    let mut bytes = Vec::new();
    open_in_tree(root, rel)?
        .read_to_end(&mut bytes)
        .at(root.join(rel))?;
    Ok(bytes)
}

fn hash_file(root: &Path, rel: &Path) -> Result<(u64, String), ExportError> {
    let mut f = open_in_tree(root, rel)?;
    hash_copy(&mut f, &mut std::io::sink(), &root.join(rel))
}

/// Copies `from` into `to` and returns the size and SHA-256 of what went through.
fn hash_copy(
    from: &mut impl Read,
    to: &mut impl Write,
    path: &Path,
) -> Result<(u64, String), ExportError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
        to.write_all(&buf[..n]).at(path)?;
    }
    Ok((size, hex::encode(h.finalize())))
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The verified tree that was written.
    pub tree: VerifiedTree,
    /// Bytes written.
    pub bytes: u64,
    /// The destination.
    pub out: PathBuf,
}

/// Verifies the tree at `root` and writes it to `out` atomically (see the module docs).
pub fn export(
    root: &Path,
    out: &Path,
    keys: &TreeKeys,
    now: DateTime<Utc>,
) -> Result<Exported, ExportError> {
    check_destination(root, out)?;
    let tree = verify_tree(root, keys, now)?;
    let b = Beside::new(out, "tmp")?;
    let (tmp, parent, name, suffix) = (&b.folder, &b.parent, &b.name, &b.suffix);
    match write_tree(root, tmp, &tree) {
        Ok(bytes) => {
            if let Err(e) = swap_into_place(tmp, out, parent, name, suffix) {
                let _ = fs::remove_dir_all(tmp);
                return Err(e);
            }
            Ok(Exported {
                tree,
                bytes,
                out: out.to_path_buf(),
            })
        }
        Err(e) => {
            let _ = fs::remove_dir_all(tmp);
            Err(e)
        }
    }
}

/// A new folder beside the destination `out`: `OUT.KIND-SUFFIX` in `out`'s parent
/// (created), so renames into place stay on one file system.
struct Beside {
    folder: PathBuf,
    parent: PathBuf,
    name: String,
    suffix: String,
}

impl Beside {
    fn new(out: &Path, kind: &str) -> Result<Self, ExportError> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .ok_or_else(|| ExportError::Destination {
                path: out.to_path_buf(),
                reason: "no folder name".into(),
            })?;
        fs::create_dir_all(&parent).at(&parent)?;
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let folder = parent.join(format!("{name}.{kind}-{suffix}"));
        fs::create_dir(&folder).at(&folder)?;
        Ok(Self {
            folder,
            parent,
            name,
            suffix,
        })
    }
}

/// Copies every object of `store` (`id` names it in errors) into a new folder beside `out`,
/// then verifies and exports that snapshot to `out` with [`export`]; the snapshot is
/// removed in every case.
pub async fn export_objects(
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    id: &str,
    out: &Path,
    keys: &TreeKeys,
    now: DateTime<Utc>,
) -> Result<Exported, ExportError> {
    let snapshot = Beside::new(out, "src")?.folder;
    let copied = fetch_objects(store.as_ref(), id, &snapshot).await;
    let done = match copied {
        Ok(0) => Err(ExportError::Objects {
            store: id.to_string(),
            reason: "holds no object (is the URL right?); nothing exported".into(),
            source: None,
        }),
        Ok(_) => {
            let (root, out, keys) = (snapshot.clone(), out.to_path_buf(), keys.clone());
            tokio::task::spawn_blocking(move || export(&root, &out, &keys, now))
                .await
                .unwrap_or_else(|e| {
                    Err(ExportError::Io {
                        path: snapshot.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })
                })
        }
        Err(e) => Err(e),
    };
    let _ = fs::remove_dir_all(&snapshot);
    done.map_err(|e| rebase(e, &snapshot, id))
}

/// `e` naming the objects of the store `id` instead of their copies under `snapshot`.
fn rebase(mut e: ExportError, snapshot: &Path, id: &str) -> ExportError {
    let at = |p: &mut PathBuf| {
        if let Ok(rel) = p.strip_prefix(snapshot) {
            *p = PathBuf::from(format!("{}/{}", id.trim_end_matches('/'), rel.display()));
        }
    };
    use ExportError as E;
    match &mut e {
        E::Io { path, .. }
        | E::Signature { path, .. }
        | E::Document { path, .. }
        | E::Inconsistent { path, .. }
        | E::Expired { path, .. }
        | E::Artifact { path, .. }
        | E::Tree { path, .. } => at(path),
        E::ManifestDigest {
            channel, manifest, ..
        } => {
            at(channel);
            at(manifest);
        }
        E::Objects { .. } | E::Destination { .. } => {}
    }
    e
}

/// Copies every object of `store` under `into` (objects whose names are not plain path
/// components are left out, logged); how many were copied.
async fn fetch_objects(
    store: &dyn object_store::ObjectStore,
    id: &str,
    into: &Path,
) -> Result<usize, ExportError> {
    use futures_util::TryStreamExt;
    use object_store::ObjectStoreExt;
    use tokio::io::AsyncWriteExt;

    let failed = |what: &str, source: object_store::Error| ExportError::Objects {
        store: id.to_string(),
        reason: format!("{what}: {source}"),
        source: Some(source),
    };
    let listed: Vec<_> = store
        .list(None)
        .try_collect()
        .await
        .map_err(|e| failed("listing", e))?;
    let mut n = 0;
    for meta in listed {
        let parts: Vec<String> = meta
            .location
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        if parts.is_empty() || !parts.iter().all(|p| tree::plain(p)) {
            tracing::warn!(object = %meta.location, "not a plain tree path; not exported");
            continue;
        }
        let dst = parts.iter().fold(into.to_path_buf(), |p, c| p.join(c));
        if let Some(dir) = dst.parent() {
            fs::create_dir_all(dir).at(dir)?;
        }
        let what = meta.location.to_string();
        let mut body = store
            .get(&meta.location)
            .await
            .map_err(|e| failed(&what, e))?
            .into_stream();
        let mut f = tokio::fs::File::create(&dst).await.at(&dst)?;
        while let Some(chunk) = body.try_next().await.map_err(|e| failed(&what, e))? {
            f.write_all(&chunk).await.at(&dst)?;
        }
        f.flush().await.at(&dst)?;
        n += 1;
    }
    Ok(n)
}

fn write_tree(root: &Path, tmp: &Path, tree: &VerifiedTree) -> Result<u64, ExportError> {
    let mut total = 0u64;
    for f in &tree.files {
        let rel = match f {
            TreeFile::Document { rel, .. }
            | TreeFile::Artifact { rel, .. }
            | TreeFile::Companion { rel } => rel,
        };
        let dst = tmp.join(rel);
        if let Some(dir) = dst.parent() {
            fs::create_dir_all(dir).at(dir)?;
        }
        let mut w = fs::File::create(&dst).at(&dst)?;
        match f {
            TreeFile::Document { bytes, .. } => {
                w.write_all(bytes).at(&dst)?;
                total += bytes.len() as u64;
            }
            TreeFile::Artifact { size, sha256, .. } => {
                let src = root.join(rel);
                let mut r = open_in_tree(root, rel)?;
                let (n, sha) = hash_copy(&mut r, &mut w, &src)?;
                // Changed between the check and the copy: refuse rather than ship it.
                if n != *size || sha != *sha256 {
                    return Err(ExportError::Artifact {
                        path: src,
                        expected_size: *size,
                        expected_sha256: sha256.clone(),
                        actual: format!("{n} bytes sha256 {sha} (changed during the export)"),
                    });
                }
                total += n;
            }
            TreeFile::Companion { .. } => {
                let src = root.join(rel);
                let mut r = open_in_tree(root, rel)?;
                total += std::io::copy(&mut r, &mut w).at(&src)?;
            }
        }
        w.sync_all().at(&dst)?;
    }
    let marker = tmp.join(EXPORT_MARKER);
    fs::write(&marker, b"written by railgun release export\n").at(&marker)?;
    Ok(total)
}

/// Renames `tmp` to `out`; an existing export at `out` is moved aside first and removed
/// after (the one moment `out` is absent is between two renames).
fn swap_into_place(
    tmp: &Path,
    out: &Path,
    parent: &Path,
    name: &str,
    suffix: &str,
) -> Result<(), ExportError> {
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(fs::rename(tmp, out).at(out)?),
        Err(e) => Err(PathIoError::new(out, e).into()),
        Ok(_) => {
            let old = parent.join(format!("{name}.old-{suffix}"));
            fs::rename(out, &old).at(out)?;
            if let Err(e) = fs::rename(tmp, out) {
                let _ = fs::rename(&old, out);
                return Err(PathIoError::new(out, e).into());
            }
            Ok(fs::remove_dir_all(&old).at(&old)?)
        }
    }
}

/// Refuses an `out` that overlaps `root`, is not a folder, or is a non-empty folder that no
/// export wrote.
fn check_destination(root: &Path, out: &Path) -> Result<(), ExportError> {
    let bad = |reason: &str| ExportError::Destination {
        path: out.to_path_buf(),
        reason: reason.to_string(),
    };
    let root_c = fs::canonicalize(root).at(root)?;
    let out_abs = absolute(out)?;
    if out_abs.starts_with(&root_c) || root_c.starts_with(&out_abs) {
        return Err(bad(
            "the export folder must be outside the tree (and not contain it)",
        ));
    }
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PathIoError::new(out, e).into()),
        Ok(m) if !m.is_dir() => Err(bad("exists and is not a folder")),
        Ok(_) => {
            let empty = fs::read_dir(out).at(out)?.next().is_none();
            if empty || out.join(EXPORT_MARKER).is_file() {
                Ok(())
            } else {
                Err(bad(
                    "exists, is not empty and is not a previous export; choose another folder",
                ))
            }
        }
    }
}

/// `p` made absolute with its existing ancestors canonicalized (symlinks resolved).
fn absolute(p: &Path) -> Result<PathBuf, ExportError> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().at(p)?.join(p)
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = fs::canonicalize(existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(normalize_abs(&out));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(normalize_abs(&abs)),
        }
    }
}

fn normalize_abs(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_pointers_inside_the_tree_only() {
        assert_eq!(
            normalize(Path::new("app/stable/../releases/1.0.0/manifest.json")),
            Some(PathBuf::from("app/releases/1.0.0/manifest.json"))
        );
        assert_eq!(normalize(Path::new("app/stable/../../../etc/x")), None);
        assert_eq!(normalize(Path::new("/etc/x")), None);
    }
}
