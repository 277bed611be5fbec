//! The release registry: signed manifests in, artifacts uploaded beside them.
//!
//! Owns `POST /admin/releases` ([`Rollouts::register_release`]) and
//! `PUT /admin/releases/{app}/{version}/artifacts/{file}` ([`Rollouts::upload_artifact`]).
//! Files land in the tree of `railgun release publish`:
//! `ROOT/<app>/releases/<version>/manifest.json` and the artifacts beside it, delta patches
//! included (each checked against its size and SHA-256 in the signed manifest like an
//! artifact).
//!
//! It refuses: an envelope that does not verify with the release keys (checked before the
//! payload is parsed, nothing written), a version registered before with other bytes, a
//! relative artifact URL that is not a plain file name, and an upload whose size or SHA-256
//! differs from the signed manifest (streamed to a temporary file that is deleted; never
//! more bytes read than the manifest allows). A start asked for while artifacts are missing
//! waits and runs when the last one arrives.

use std::path::{Path, PathBuf};

use axum::body::{Body, HttpBody};
use railgun_core::error::IoContext;
use railgun_core::trust::{Envelope, SignedDocument, PAYLOAD_RELEASE};
use railgun_core::update::{is_valid_app_name, ReleaseManifest, RolloutPolicy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{check_names, RolloutError, RolloutStatus, Rollouts};
use crate::serve::shared::UpdateTree;
use crate::store::rollout::{to_ms, ReleaseRow};

/// Largest Sigstore bundle accepted as an upload.
pub const MAX_BUNDLE_BYTES: u64 = 1024 * 1024;

fn yes() -> bool {
    true
}

/// Body of `POST /admin/releases`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// The signed manifest envelope: a JSON object, or its text as a string.
    pub manifest: serde_json::Value,
    /// Start the rollout (now, or once every artifact is uploaded). Default `true`.
    #[serde(default = "yes")]
    pub start: bool,
    /// Starting percentage (default: the first stage).
    #[serde(default)]
    pub percentage: Option<f64>,
    /// Fallback release (default: what the channel serves now, when lower).
    #[serde(default)]
    pub fallback_version: Option<String>,
}

/// Answer of `POST /admin/releases`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterAnswer {
    /// App.
    pub app: String,
    /// Channel of the manifest.
    pub channel: String,
    /// Version.
    pub version: String,
    /// Artifact (and bundle) file names not yet in the tree.
    pub missing_artifacts: Vec<String>,
    /// `false` when the same manifest was registered before.
    pub created: bool,
    /// The rollout, when it started (now or before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// Answer of `PUT /admin/releases/{app}/{version}/artifacts/{file}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadAnswer {
    /// The file name.
    pub file: String,
    /// Bytes stored.
    pub size: u64,
    /// Their SHA-256.
    pub sha256: String,
    /// Files still missing.
    pub missing_artifacts: Vec<String>,
    /// The rollout, when the upload completed a deferred start (or it ran before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// The manifest of a registered release (verified when it was registered).
pub fn manifest_of(rel: &ReleaseRow) -> Result<ReleaseManifest, RolloutError> {
    use base64::Engine as _;
    let env: Envelope = serde_json::from_str(&rel.envelope)
        .map_err(|e| RolloutError::BadRequest(format!("stored manifest envelope: {e}")))?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env.payload.as_bytes())
        .map_err(|e| RolloutError::BadRequest(format!("stored manifest payload: {e}")))?;
    Ok(ReleaseManifest::from_verified_payload(&payload)?)
}

/// The rollout policy of a registered release.
pub fn policy_of(rel: &ReleaseRow) -> Result<RolloutPolicy, RolloutError> {
    Ok(manifest_of(rel)?.rollout_policy())
}

/// `Some(name)` for a relative URL that is a plain file name, `None` for an absolute URL
/// (hosted elsewhere); anything else is refused.
fn plain_file_name(url: &str) -> Result<Option<&str>, RolloutError> {
    if url.contains("://") {
        return Ok(None);
    }
    if !is_plain_name(url) {
        return Err(RolloutError::BadRequest(format!(
            "relative artifact URL {url:?} must be a plain file name"
        )));
    }
    Ok(Some(url))
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

fn release_dir(root: &Path, app: &str, version: &str) -> PathBuf {
    root.join(app).join("releases").join(version)
}

/// What a file of a manifest must be: exact size and digest (artifacts), or at most a size
/// (Sigstore bundles, verified by clients themselves).
#[derive(Debug, Clone)]
enum Expected {
    Artifact { size: u64, sha256: String },
    Bundle,
}

fn expected_files(m: &ReleaseManifest) -> Result<Vec<(String, Expected)>, RolloutError> {
    let mut out = Vec::new();
    for a in &m.artifacts {
        if let Some(name) = plain_file_name(&a.url)? {
            out.push((
                name.to_string(),
                Expected::Artifact {
                    size: a.size,
                    sha256: a.sha256.clone(),
                },
            ));
        }
        if let Some(b) = &a.sigstore_bundle {
            if let Some(name) = plain_file_name(b)? {
                out.push((name.to_string(), Expected::Bundle));
            }
        }
    }
    for p in &m.patches {
        out.push((
            p.file.clone(),
            Expected::Artifact {
                size: p.size,
                sha256: p.sha256.clone(),
            },
        ));
    }
    Ok(out)
}

/// File names of the release not (yet) in the tree: absent, or an artifact of the wrong
/// size (digests are checked when a file is uploaded or published).
pub async fn missing_artifacts(
    tree: &UpdateTree,
    rel: &ReleaseRow,
) -> Result<Vec<String>, RolloutError> {
    let m = manifest_of(rel)?;
    let mut missing = Vec::new();
    for (name, exp) in expected_files(&m)? {
        let size = tree
            .size(&[&rel.app, "releases", &rel.version, &name])
            .await?;
        let present = match (size, exp) {
            (Some(len), Expected::Artifact { size, .. }) => len == size,
            (Some(_), Expected::Bundle) => true,
            (None, _) => false,
        };
        if !present {
            missing.push(name);
        }
    }
    Ok(missing)
}

/// Deletes a temporary file unless disarmed (an upload cut short leaves nothing).
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Rollouts {
    /// Verifies, stores and (unless `start: false`) starts rolling out a signed release.
    pub async fn register_release(
        &self,
        req: RegisterRequest,
    ) -> Result<RegisterAnswer, RolloutError> {
        let keys = self.release_keys()?;
        let bytes = match &req.manifest {
            serde_json::Value::String(s) => s.clone().into_bytes(),
            // Written as the signing tools write envelopes, so a tree published by
            // `railgun release publish` holds the same bytes.
            v @ serde_json::Value::Object(_) => serde_json::from_value::<Envelope>(v.clone())
                .map_err(|e| RolloutError::BadRequest(format!("manifest envelope: {e}")))?
                .to_json_bytes(),
            _ => {
                return Err(RolloutError::BadRequest(
                    "manifest must be the signed envelope (an object or its JSON text)".into(),
                ))
            }
        };
        // Verify first, parse after.
        let verified = keys
            .verify(&bytes, PAYLOAD_RELEASE)
            .map_err(RolloutError::Signature)?;
        let m = ReleaseManifest::from_verified_payload(&verified.payload)?;
        let (app, channel, version) = (m.app.clone(), m.channel.clone(), m.version.to_string());
        check_names(&app, &channel)?;
        expected_files(&m)?;
        if let Some(p) = req.percentage {
            super::check_percentage(p)?;
        }
        let sha = hex::encode(Sha256::digest(&bytes));
        let text = String::from_utf8(bytes)
            .map_err(|e| RolloutError::BadRequest(format!("manifest is not UTF-8: {e}")))?;

        let _g = self.inner.lock.lock().await;
        let existing = self
            .store()
            .get_release(app.clone(), version.clone())
            .await?;
        let created = match &existing {
            Some(e) if e.manifest_sha256 != sha => {
                return Err(RolloutError::Conflict(format!(
                    "{app} {version} is registered with another manifest (sha256 {}); versions are immutable",
                    e.manifest_sha256
                )))
            }
            Some(_) => false,
            None => true,
        };
        let manifest_rel = [app.as_str(), "releases", version.as_str(), "manifest.json"];
        let served = self.tree().read(&manifest_rel).await?;
        if served.as_deref() != Some(text.as_bytes()) {
            // New, or the tree lost it (same digest as registered, so the same bytes).
            self.tree()
                .write(&manifest_rel, text.clone().into_bytes())
                .await?;
        }
        let mut row = existing.unwrap_or(ReleaseRow {
            app: app.clone(),
            version: version.clone(),
            channel: channel.clone(),
            envelope: text,
            manifest_sha256: sha,
            created_ms: to_ms(self.now()),
            pending_start: false,
            pending_percentage: None,
            pending_fallback: None,
        });
        let missing = missing_artifacts(self.tree(), &row).await?;
        let started = self
            .store()
            .get_rollout(app.clone(), channel.clone(), version.clone())
            .await?
            .is_some();
        if req.start && !started {
            if missing.is_empty() {
                self.store().put_release(row.clone()).await?;
                self.start_locked(
                    &app,
                    &channel,
                    &version,
                    req.percentage,
                    req.fallback_version.clone(),
                )
                .await?;
            } else {
                row.pending_start = true;
                row.pending_percentage = req.percentage;
                row.pending_fallback = req.fallback_version.clone();
                self.store().put_release(row).await?;
            }
        } else {
            if !req.start {
                // `start: false` cancels a start that waited for artifacts.
                row.pending_start = false;
            }
            self.store().put_release(row).await?;
        }
        drop(_g);
        let rollout = match self.status(&app, &channel, &version).await {
            Ok(s) => Some(s),
            Err(RolloutError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        tracing::info!(%app, %version, %channel, missing = missing.len(), "release registered");
        Ok(RegisterAnswer {
            app,
            channel,
            version,
            missing_artifacts: missing,
            created,
            rollout,
        })
    }

    /// Streams one artifact of a registered release into the tree, checked against the
    /// signed manifest; completes a deferred start when it was the last one missing.
    pub async fn upload_artifact(
        &self,
        app: &str,
        version: &str,
        file: &str,
        body: Body,
    ) -> Result<UploadAnswer, RolloutError> {
        if !is_valid_app_name(app) || !is_plain_name(file) {
            return Err(RolloutError::BadRequest(format!(
                "bad app {app:?} or file name {file:?}"
            )));
        }
        let rel = self
            .store()
            .get_release(app.into(), version.into())
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("release {app} {version}")))?;
        let m = manifest_of(&rel)?;
        let expected = expected_files(&m)?
            .into_iter()
            .find(|(n, _)| n == file)
            .map(|(_, e)| e)
            .ok_or_else(|| {
                RolloutError::NotFound(format!("file {file} in the manifest of {app} {version}"))
            })?;
        let limit = match &expected {
            Expected::Artifact { size, .. } => *size,
            Expected::Bundle => MAX_BUNDLE_BYTES,
        };
        let dir = release_dir(self.root(), app, version);
        tokio::fs::create_dir_all(&dir).await.at(&dir)?;
        let tmp_path = dir.join(format!(
            ".{file}.upload-{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let mut guard = TempFile(Some(tmp_path.clone()));
        let mut out = tokio::fs::File::create(&tmp_path).await.at(&tmp_path)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = body;
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame.map_err(|e| RolloutError::BadRequest(format!("upload body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            size += data.len() as u64;
            if size > limit {
                return Err(RolloutError::TooLarge {
                    file: file.into(),
                    limit,
                });
            }
            hasher.update(&data);
            out.write_all(&data).await.at(&tmp_path)?;
        }
        out.sync_all().await.at(&tmp_path)?;
        drop(out);
        let sha256 = hex::encode(hasher.finalize());
        if let Expected::Artifact {
            size: want_size,
            sha256: want_sha,
        } = &expected
        {
            if size != *want_size || sha256 != *want_sha {
                return Err(RolloutError::ArtifactMismatch {
                    file: file.into(),
                    expected_size: *want_size,
                    expected_sha256: want_sha.clone(),
                    actual_size: size,
                    actual_sha256: sha256,
                });
            }
        }
        self.tree()
            .store_file(&tmp_path, &[app, "releases", version, file])
            .await?;
        guard.0 = None;
        tracing::info!(%app, %version, %file, size, "artifact stored");

        let missing = missing_artifacts(self.tree(), &rel).await?;
        if missing.is_empty() {
            let _g = self.inner.lock.lock().await;
            let fresh = self.store().get_release(app.into(), version.into()).await?;
            if let Some(r) = fresh.filter(|r| r.pending_start) {
                self.start_locked(
                    app,
                    &r.channel,
                    version,
                    r.pending_percentage,
                    r.pending_fallback.clone(),
                )
                .await?;
            }
        }
        let rollout = match self.status(app, &rel.channel, version).await {
            Ok(s) => Some(s),
            Err(RolloutError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        Ok(UploadAnswer {
            file: file.into(),
            size,
            sha256,
            missing_artifacts: missing,
            rollout,
        })
    }
}
