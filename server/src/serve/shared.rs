//! Where the update tree lives: the local folder (`--root`, the default) or an object store
//! every server shares (`railgun serve --object-store URL`: `file:///path`, `s3://bucket`
//! with the standard AWS variables and `AWS_ENDPOINT`, `gs://`, `az://`).
//!
//! Owns [`UpdateTree`]: what the release registry and the rollout engine write (manifests,
//! artifacts, signed channel states) and read back (a channel state's sequence, which
//! artifacts are there), addressed by the tree's relative path (`APP/CHANNEL/channel.json`,
//! `APP/releases/VERSION/FILE`). In a local tree a write is an atomic rename (as
//! `railgun release publish` writes); in an object store it is one `PUT` (objects are
//! replaced whole: a reader sees the old bytes or the new, never a mix). Serving it is
//! [`super::files`]' job: from the object store when there is one, so every server answers
//! the same bytes with the same `ETag`.
//!
//! It refuses names that are not plain path components (the same rule as the local tree),
//! and never logs an object-store URL's credentials (they come from the environment only).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;

use super::tree;

/// The update tree: a local folder, or an object store shared by every server.
#[derive(Debug, Clone)]
pub struct UpdateTree {
    root: PathBuf,
    objects: Option<Objects>,
}

/// An opened object store and the URL it came from (credentials stripped).
#[derive(Clone)]
struct Objects {
    store: Arc<dyn ObjectStore>,
    id: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("id", &self.id).finish()
    }
}

/// Why the tree could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SharedTreeError {
    /// A name that is not one plain path component.
    #[error("not a plain tree path: {0}")]
    BadName(String),
    /// The local file system failed.
    #[error("update tree {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The object store failed.
    #[error("object store {path}: {source}")]
    Object {
        /// The object's path in the store.
        path: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
}

impl UpdateTree {
    /// The local tree at `root` (created on first write).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            objects: None,
        }
    }

    /// The tree in the object store `url` names (a folder path or `file://` URL is created);
    /// `root` stays the local folder staging uploads.
    pub fn open(root: impl Into<PathBuf>, url: &str) -> Result<Self, crate::export::ExportError> {
        let d = crate::export::dest::open(url)?;
        Ok(Self {
            root: root.into(),
            objects: Some(Objects {
                store: d.store,
                id: d.id,
            }),
        })
    }

    /// The tree `config` names: its object store (`--object-store`), else the local
    /// `root`.
    pub fn for_config(config: &super::ServerConfig) -> Result<Self, crate::export::ExportError> {
        match &config.object_store {
            Some(url) => Self::open(&config.root, url),
            None => Ok(Self::local(&config.root)),
        }
    }

    /// The local folder (the tree itself, or the staging folder of an object-store tree).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object store, when the tree lives in one.
    pub fn objects(&self) -> Option<&Arc<dyn ObjectStore>> {
        self.objects.as_ref().map(|o| &o.store)
    }

    /// What the tree is, for a log line: the folder, or the store's URL without
    /// credentials.
    pub fn describe(&self) -> String {
        match &self.objects {
            Some(o) => o.id.clone(),
            None => self.root.display().to_string(),
        }
    }

    fn object_path(rel: &[&str]) -> Result<ObjectPath, SharedTreeError> {
        if rel.is_empty() || !rel.iter().all(|c| tree::plain(c)) {
            return Err(SharedTreeError::BadName(rel.join("/")));
        }
        Ok(ObjectPath::from_iter(rel.iter().copied()))
    }

    fn local_path(&self, rel: &[&str]) -> Result<PathBuf, SharedTreeError> {
        if rel.is_empty() || !rel.iter().all(|c| tree::plain(c)) {
            return Err(SharedTreeError::BadName(rel.join("/")));
        }
        Ok(rel.iter().fold(self.root.clone(), |p, c| p.join(c)))
    }

    fn object_err(path: &ObjectPath, source: object_store::Error) -> SharedTreeError {
        SharedTreeError::Object {
            path: path.to_string(),
            source,
        }
    }

    /// The bytes of the file at `rel`, `None` when there is none.
    pub async fn read(&self, rel: &[&str]) -> Result<Option<Vec<u8>>, SharedTreeError> {
        match &self.objects {
            Some(o) => {
                let p = Self::object_path(rel)?;
                match o.store.get(&p).await {
                    Ok(r) => match r.bytes().await {
                        Ok(b) => Ok(Some(b.to_vec())),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(Self::object_err(&p, e)),
                    },
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(Self::object_err(&p, e)),
                }
            }
            None => {
                let path = self.local_path(rel)?;
                match tokio::fs::read(&path).await {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(SharedTreeError::Io { path, source }),
                }
            }
        }
    }

    /// The size of the file at `rel`, `None` when there is none.
    pub async fn size(&self, rel: &[&str]) -> Result<Option<u64>, SharedTreeError> {
        match &self.objects {
            Some(o) => {
                let p = Self::object_path(rel)?;
                match o.store.head(&p).await {
                    Ok(m) => Ok(Some(m.size)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(Self::object_err(&p, e)),
                }
            }
            None => {
                let path = self.local_path(rel)?;
                match tokio::fs::metadata(&path).await {
                    Ok(m) if m.is_file() => Ok(Some(m.len())),
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(SharedTreeError::Io { path, source }),
                }
            }
        }
    }

    /// Writes `bytes` at `rel`, replacing the file whole (atomic rename, or one `PUT`).
    pub async fn write(&self, rel: &[&str], bytes: Vec<u8>) -> Result<(), SharedTreeError> {
        match &self.objects {
            Some(o) => {
                let p = Self::object_path(rel)?;
                o.store
                    .put(&p, PutPayload::from(bytes))
                    .await
                    .map_err(|e| Self::object_err(&p, e))?;
                Ok(())
            }
            None => {
                let path = self.local_path(rel)?;
                let target = path.clone();
                tokio::task::spawn_blocking(move || crate::release::write_atomic(&target, &bytes))
                    .await
                    .map_err(|e| SharedTreeError::Io {
                        path: path.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })?
                    .map_err(|e| SharedTreeError::Io {
                        path,
                        source: std::io::Error::other(e),
                    })
            }
        }
    }

    /// Moves the finished local file `staged` (checked by the caller) to `rel`: a rename in a
    /// local tree, a streamed upload (multipart when large) in an object store, after which
    /// the staged file is removed.
    pub async fn store_file(&self, staged: &Path, rel: &[&str]) -> Result<(), SharedTreeError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SharedTreeError::Io { path, source }
        };
        match &self.objects {
            Some(o) => {
                let p = Self::object_path(rel)?;
                let mut file = tokio::fs::File::open(staged).await.map_err(io(staged))?;
                let mut w = object_store::buffered::BufWriter::new(o.store.clone(), p.clone());
                let copied = tokio::io::copy(&mut file, &mut w).await;
                if let Err(e) = copied {
                    let _ = w.abort().await;
                    return Err(io(staged)(e));
                }
                w.shutdown().await.map_err(|e| SharedTreeError::Io {
                    path: PathBuf::from(p.to_string()),
                    source: e,
                })?;
                let _ = tokio::fs::remove_file(staged).await;
                Ok(())
            }
            None => {
                let dst = self.local_path(rel)?;
                tokio::fs::rename(staged, &dst).await.map_err(io(&dst))
            }
        }
    }
}
