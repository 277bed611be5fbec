//! Where exported files go: a folder (a plain path or `file://`) or an object store
//! (`s3://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`, `az://CONTAINER/PREFIX`), all through the
//! `object_store` crate.
//!
//! Owns [`Destination`] (the store, its identity in the watermark table, the folder of a
//! local one), the marker file `_railgun_export.json` (a destination receives either
//! incremental or date-range exports in one format, never a mix that would duplicate rows),
//! and the clean-ups: staging files a killed run left in a local folder, and files of a
//! redone chunk that its rows no longer fill.
//!
//! Object-store credentials come from the environment only (`AWS_*`, `GOOGLE_*`,
//! `AZURE_*`, as each SDK reads them); a destination's identity never contains them.

use std::collections::BTreeSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::schema::Table;
use super::{ExportError, Format};

/// The marker file at the root of a destination.
pub const MARKER: &str = "_railgun_export.json";

/// An opened destination.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The store (rooted at the destination).
    pub store: Arc<dyn ObjectStore>,
    /// Its identity in the watermark table: `file:///ABS/PATH` or the URL without query.
    pub id: String,
    /// The folder, when local.
    pub local: Option<PathBuf>,
}

/// What a destination receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// `incremental` or `dates`.
    pub mode: String,
    /// `parquet` or `ndjson`.
    pub format: String,
}

fn bad(out: &str, reason: impl Into<String>) -> ExportError {
    ExportError::Destination {
        out: out.to_string(),
        reason: reason.into(),
    }
}

/// Opens `out`: a path or `file://` URL (the folder is created), or an object-store URL.
pub fn open(out: &str) -> Result<Destination, ExportError> {
    if out.trim().is_empty() {
        return Err(bad(out, "empty destination"));
    }
    if let Some((scheme, _)) = out.split_once("://") {
        let url = url::Url::parse(out).map_err(|e| bad(out, e.to_string()))?;
        if scheme == "file" {
            let path = url
                .to_file_path()
                .map_err(|_| bad(out, "not a local file URL"))?;
            return local(out, &path);
        }
        let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match scheme {
            "s3" | "s3a" => AmazonS3Builder::from_env()
                .with_url(out)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            "gs" => GoogleCloudStorageBuilder::from_env()
                .with_url(out)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            "az" | "azure" | "abfs" | "abfss" => MicrosoftAzureBuilder::from_env()
                .with_url(out)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            other => {
                return Err(bad(
                    out,
                    format!(
                        "unsupported scheme {other:?}: use a folder, file://, s3://, gs:// or az://"
                    ),
                ))
            }
        };
        let store = built.map_err(|e| bad(out, e.to_string()))?;
        let prefix = url.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        let mut id = url.clone();
        id.set_query(None);
        id.set_fragment(None);
        let _ = id.set_password(None);
        let _ = id.set_username("");
        return Ok(Destination {
            store,
            id: id.as_str().trim_end_matches('/').to_string(),
            local: None,
        });
    }
    local(out, FsPath::new(out))
}

fn local(out: &str, path: &FsPath) -> Result<Destination, ExportError> {
    if path.exists() && !path.is_dir() {
        return Err(bad(out, "exists and is not a folder"));
    }
    std::fs::create_dir_all(path)
        .map_err(|e| bad(out, format!("cannot create the folder: {e}")))?;
    let abs = std::fs::canonicalize(path).map_err(|e| bad(out, e.to_string()))?;
    // A folder we cannot write to fails here, not halfway through the first file.
    let probe = abs.join(format!(".railgun-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| bad(out, format!("cannot write: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    let store = LocalFileSystem::new_with_prefix(&abs)
        .map_err(|e| bad(out, e.to_string()))?
        .with_fsync(true);
    let id = url::Url::from_directory_path(&abs)
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|_| abs.display().to_string());
    Ok(Destination {
        store: Arc::new(store),
        id,
        local: Some(abs),
    })
}

impl Destination {
    /// Reads the marker (`None`: nothing was exported here yet).
    pub async fn marker(&self) -> Result<Option<Marker>, ExportError> {
        match self.store.get(&Path::from(MARKER)).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| self.err(MARKER, e))?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| ExportError::Write {
                        path: format!("{}/{MARKER}", self.id),
                        reason: e.to_string(),
                    })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(MARKER, e)),
        }
    }

    /// Checks the marker against `mode`/`format` and writes it when absent.
    pub async fn claim(&self, mode: &str, format: Format) -> Result<(), ExportError> {
        let want = Marker {
            mode: mode.to_string(),
            format: format.name().to_string(),
        };
        match self.marker().await? {
            Some(m) if m == want => Ok(()),
            Some(m) => Err(ExportError::Mixed {
                out: self.id.clone(),
                found: format!("{} {}", m.mode, m.format),
                wanted: format!("{} {}", want.mode, want.format),
            }),
            None => {
                let body = serde_json::to_vec_pretty(&want).unwrap_or_default();
                self.store
                    .put(&Path::from(MARKER), PutPayload::from(body))
                    .await
                    .map_err(|e| self.err(MARKER, e))?;
                Ok(())
            }
        }
    }

    fn err(&self, path: &str, e: object_store::Error) -> ExportError {
        ExportError::Write {
            path: format!("{}/{path}", self.id),
            reason: e.to_string(),
        }
    }

    /// Removes the staging files (`NAME#N`) a killed run left in the local folders of
    /// `tables` (object stores never show an unfinished upload).
    pub fn clean_staging(&self, tables: &[&Table]) {
        let Some(root) = &self.local else { return };
        for t in tables {
            remove_staging(&root.join(t.name));
        }
    }

    /// Deletes the files named `name` of `table` whose partition is not in `keep` (and, when
    /// `within` is set, inside those days): what a redone step no longer writes.
    pub async fn remove_stale(
        &self,
        table: &Table,
        name: &str,
        keep: &BTreeSet<Option<i32>>,
        within: Option<(i32, i32)>,
    ) -> Result<u64, ExportError> {
        let prefix = Path::from(table.name);
        let found: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.err(table.name, e))?;
        let mut removed = 0;
        for meta in found {
            if meta.location.filename() != Some(name) {
                continue;
            }
            let day = partition_day(&meta.location);
            if keep.contains(&day) {
                continue;
            }
            if let (Some((from, to)), Some(d)) = (within, day) {
                if d < from || d > to {
                    continue;
                }
            }
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                Err(e) => return Err(self.err(meta.location.as_ref(), e)),
            }
        }
        Ok(removed)
    }

    /// Deletes one file if it exists (a daily snapshot whose day has no rows any more).
    pub async fn remove(&self, path: &Path) -> Result<bool, ExportError> {
        match self.store.delete(path).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(path.as_ref(), e)),
        }
    }
}

/// The day of a `…/date=YYYY-MM-DD/file` path.
fn partition_day(p: &Path) -> Option<i32> {
    p.parts()
        .filter_map(|s| {
            s.as_ref()
                .strip_prefix("date=")
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        })
        .map(crate::store::day_number)
        .next()
}

fn remove_staging(dir: &FsPath) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            remove_staging(&p);
            continue;
        }
        let name = e.file_name().to_string_lossy().to_string();
        let staged = name
            .rsplit_once('#')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if staged {
            let _ = std::fs::remove_file(&p);
        }
    }
}
