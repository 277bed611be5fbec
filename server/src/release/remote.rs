//! `railgun release publish --server URL`: the client of the server's release routes.
//!
//! Owns [`publish_remote`]: posts the signed manifest envelope to `POST /admin/releases`
//! with `"start": false`, uploads each file the server lists in `missingArtifacts` with
//! `PUT /admin/releases/{app}/{version}/artifacts/{file}` (streamed from disk), then starts
//! the rollout with `POST /admin/rollouts/{app}/{channel}/start`. The server verifies the
//! envelope and every uploaded byte against it; this client only moves them.
//!
//! It refuses to upload a file whose name is not a plain file name, never prints or logs
//! the admin token, and stops at the first refused step (nothing is started then).

use std::path::{Path, PathBuf};

use reqwest::{Client, Method, StatusCode, Url};
use serde_json::{json, Value};

/// Why a remote publish stopped.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A local file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The server URL is not usable.
    #[error("bad server URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server could not be reached during `step`.
    #[error("{step}: {reason}")]
    Transport {
        /// What was being done.
        step: String,
        /// Why (without the URL's credentials).
        reason: String,
    },
    /// The server refused `step`.
    #[error("{step}: server answered {status}: {message}")]
    Refused {
        /// What was being done.
        step: String,
        /// The HTTP status.
        status: u16,
        /// The server's `error` message (or body).
        message: String,
    },
    /// The server's answer is not what the API promises.
    #[error("{step}: unexpected answer: {reason}")]
    BadAnswer {
        /// What was being done.
        step: String,
        /// What is wrong.
        reason: String,
    },
    /// The server wants a file that is not in the artifacts folder.
    #[error("the server needs artifact {file:?}, which is not in {dir} (pass --artifacts DIR)")]
    MissingArtifact {
        /// The file name.
        file: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
}

/// What to publish where.
#[derive(Debug, Clone)]
pub struct RemotePublish {
    /// Base URL of the server.
    pub server: String,
    /// Admin token (`RAILGUN_ADMIN_TOKEN`).
    pub token: String,
    /// The signed manifest envelope file.
    pub manifest: PathBuf,
    /// Where the artifacts are.
    pub artifacts_dir: PathBuf,
    /// Starting percentage (the server's first stage when `None`).
    pub percentage: Option<f64>,
    /// Version served to installs outside the rollout / when halted.
    pub fallback_version: Option<String>,
}

/// What [`publish_remote`] did.
#[derive(Debug, Clone)]
pub struct RemotePublished {
    /// App.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// Version.
    pub version: String,
    /// Files uploaded.
    pub uploaded: Vec<String>,
    /// The rollout status the start route answered.
    pub rollout: Value,
}

fn endpoint(base: &Url, segments: &[&str]) -> Result<Url, RemoteError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| RemoteError::BadUrl {
            url: base.to_string(),
            reason: "cannot be a base".into(),
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Sends one request and returns the JSON answer of a 2xx.
async fn call(
    client: &Client,
    token: &str,
    step: &str,
    method: Method,
    url: Url,
    body: reqwest::Body,
    content_type: &str,
) -> Result<Value, RemoteError> {
    let res = client
        .request(method, url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| RemoteError::Transport {
            step: step.to_string(),
            reason: railgun_core::error::chain(&e.without_url()).to_string(),
        })?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| text.chars().take(300).collect());
        return Err(RemoteError::Refused {
            step: step.to_string(),
            status: status.as_u16(),
            message,
        });
    }
    if text.trim().is_empty() || status == StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| RemoteError::BadAnswer {
        step: step.to_string(),
        reason: format!("not JSON: {e}"),
    })
}

fn string_field(v: &Value, name: &str, step: &str) -> Result<String, RemoteError> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| RemoteError::BadAnswer {
            step: step.to_string(),
            reason: format!("no {name:?} string"),
        })
}

/// Publishes a signed release to a running server and starts its rollout.
pub async fn publish_remote(p: &RemotePublish) -> Result<RemotePublished, RemoteError> {
    let base = Url::parse(&p.server).map_err(|e| RemoteError::BadUrl {
        url: p.server.clone(),
        reason: e.to_string(),
    })?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(RemoteError::BadUrl {
            url: p.server.clone(),
            reason: "use http:// or https://".into(),
        });
    }
    let envelope_bytes = tokio::fs::read(&p.manifest)
        .await
        .map_err(|source| RemoteError::Io {
            path: p.manifest.clone(),
            source,
        })?;
    let envelope: Value = serde_json::from_slice(&envelope_bytes).map_err(|e| RemoteError::Io {
        path: p.manifest.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let client = Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("railgun/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| RemoteError::Transport {
            step: "HTTP client".into(),
            reason: e.to_string(),
        })?;

    let step = "POST /admin/releases";
    let body = json!({"manifest": envelope, "start": false});
    let created = call(
        &client,
        &p.token,
        step,
        Method::POST,
        endpoint(&base, &["admin", "releases"])?,
        body.to_string().into(),
        "application/json",
    )
    .await?;
    let app = string_field(&created, "app", step)?;
    let channel = string_field(&created, "channel", step)?;
    let version = string_field(&created, "version", step)?;
    let missing: Vec<String> = match created.get("missingArtifacts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or(RemoteError::BadAnswer {
                        step: step.into(),
                        reason: "missingArtifacts holds a non-string".into(),
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(RemoteError::BadAnswer {
                step: step.into(),
                reason: "missingArtifacts is not a list".into(),
            })
        }
    };

    let mut uploaded = Vec::new();
    for file in &missing {
        if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
            return Err(RemoteError::BadAnswer {
                step: step.into(),
                reason: format!("missing artifact {file:?} is not a plain file name"),
            });
        }
        let path = p.artifacts_dir.join(file);
        let f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RemoteError::MissingArtifact {
                    file: file.clone(),
                    dir: p.artifacts_dir.clone(),
                })
            }
            Err(source) => return Err(RemoteError::Io { path, source }),
        };
        let step = format!("PUT artifact {file}");
        call(
            &client,
            &p.token,
            &step,
            Method::PUT,
            endpoint(
                &base,
                &["admin", "releases", &app, &version, "artifacts", file],
            )?,
            reqwest::Body::from(f),
            "application/octet-stream",
        )
        .await?;
        uploaded.push(file.clone());
    }

    let step = format!("POST /admin/rollouts/{app}/{channel}/start");
    let mut body = json!({"version": version});
    if let Some(pct) = p.percentage {
        body["percentage"] = json!(pct);
    }
    if let Some(f) = &p.fallback_version {
        body["fallbackVersion"] = json!(f);
    }
    let rollout = call(
        &client,
        &p.token,
        &step,
        Method::POST,
        endpoint(&base, &["admin", "rollouts", &app, &channel, "start"])?,
        body.to_string().into(),
        "application/json",
    )
    .await?;
    Ok(RemotePublished {
        app,
        channel,
        version,
        uploaded,
        rollout,
    })
}

/// The folder a manifest's artifacts are looked for in by default: the manifest's own.
pub fn default_artifacts_dir(manifest: &Path) -> PathBuf {
    match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_escape_segments() {
        let base = Url::parse("https://updates.example.com/base/").expect("url");
        let u = endpoint(
            &base,
            &[
                "admin",
                "releases",
                "app",
                "1.0.0+b",
                "artifacts",
                "a b?.zip",
            ],
        )
        .expect("endpoint");
        assert_eq!(
            u.as_str(),
            "https://updates.example.com/base/admin/releases/app/1.0.0+b/artifacts/a%20b%3F.zip"
        );
    }
}
