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

/// Publishes a signed release to a running server and starts its rollout: register the
/// manifest, upload what the server says is missing, start.
pub async fn publish_remote(p: &RemotePublish) -> Result<RemotePublished, RemoteError> {
    let server = Server::new(&p.server, &p.token)?;
    let envelope = read_envelope(&p.manifest).await?;
    let created = server.register(envelope).await?;
    let mut uploaded = Vec::new();
    for file in &created.missing {
        server.upload(&created, file, &p.artifacts_dir).await?;
        uploaded.push(file.clone());
    }
    let rollout = server
        .start(&created, p.percentage, p.fallback_version.as_deref())
        .await?;
    Ok(RemotePublished {
        app: created.app,
        channel: created.channel,
        version: created.version,
        uploaded,
        rollout,
    })
}

/// The signed manifest envelope file, as JSON (the server verifies it).
async fn read_envelope(path: &Path) -> Result<Value, RemoteError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| RemoteError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    serde_json::from_slice(&bytes).map_err(|e| RemoteError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// A release the server registered, and the files it still needs.
struct Registered {
    app: String,
    channel: String,
    version: String,
    missing: Vec<String>,
}

/// The server's admin API: base URL, token, HTTP client.
struct Server<'a> {
    base: Url,
    token: &'a str,
    client: Client,
}

impl<'a> Server<'a> {
    /// Refuses a URL that is not `http://` or `https://`.
    fn new(url: &str, token: &'a str) -> Result<Self, RemoteError> {
        let base = Url::parse(url).map_err(|e| RemoteError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(RemoteError::BadUrl {
                url: url.to_string(),
                reason: "use http:// or https://".into(),
            });
        }
        let client = Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("railgun/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RemoteError::Transport {
                step: "HTTP client".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base,
            token,
            client,
        })
    }

    /// `POST /admin/releases` with `"start": false`: the server verifies and registers the
    /// manifest and lists the artifacts it does not hold yet.
    async fn register(&self, envelope: Value) -> Result<Registered, RemoteError> {
        let step = "POST /admin/releases";
        let body = json!({"manifest": envelope, "start": false});
        let created = self
            .call(
                step,
                Method::POST,
                self.endpoint(&["admin", "releases"])?,
                body.to_string().into(),
                "application/json",
            )
            .await?;
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
        if let Some(file) = missing
            .iter()
            .find(|f| f.is_empty() || f.contains(['/', '\\']) || f.starts_with('.'))
        {
            return Err(RemoteError::BadAnswer {
                step: step.into(),
                reason: format!("missing artifact {file:?} is not a plain file name"),
            });
        }
        Ok(Registered {
            app: string_field(&created, "app", step)?,
            channel: string_field(&created, "channel", step)?,
            version: string_field(&created, "version", step)?,
            missing,
        })
    }

    /// `PUT /admin/releases/{app}/{version}/artifacts/{file}`, streamed from `dir/file`.
    async fn upload(&self, r: &Registered, file: &str, dir: &Path) -> Result<(), RemoteError> {
        let path = dir.join(file);
        let f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RemoteError::MissingArtifact {
                    file: file.to_string(),
                    dir: dir.to_path_buf(),
                })
            }
            Err(source) => return Err(RemoteError::Io { path, source }),
        };
        let url = self.endpoint(&["admin", "releases", &r.app, &r.version, "artifacts", file])?;
        self.call(
            &format!("PUT artifact {file}"),
            Method::PUT,
            url,
            reqwest::Body::from(f),
            "application/octet-stream",
        )
        .await?;
        Ok(())
    }

    /// `POST /admin/rollouts/{app}/{channel}/start`; returns the rollout status answered.
    async fn start(
        &self,
        r: &Registered,
        percentage: Option<f64>,
        fallback: Option<&str>,
    ) -> Result<Value, RemoteError> {
        let step = format!("POST /admin/rollouts/{}/{}/start", r.app, r.channel);
        let mut body = json!({"version": r.version});
        if let Some(pct) = percentage {
            body["percentage"] = json!(pct);
        }
        if let Some(f) = fallback {
            body["fallbackVersion"] = json!(f);
        }
        let url = self.endpoint(&["admin", "rollouts", &r.app, &r.channel, "start"])?;
        self.call(
            &step,
            Method::POST,
            url,
            body.to_string().into(),
            "application/json",
        )
        .await
    }

    /// The URL of `segments` below the base (each segment escaped).
    fn endpoint(&self, segments: &[&str]) -> Result<Url, RemoteError> {
        endpoint(&self.base, segments)
    }

    /// Sends one request and returns the JSON answer of a 2xx.
    async fn call(
        &self,
        step: &str,
        method: Method,
        url: Url,
        body: reqwest::Body,
        content_type: &str,
    ) -> Result<Value, RemoteError> {
        let res = self
            .client
            .request(method, url)
            .bearer_auth(self.token)
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

fn string_field(v: &Value, name: &str, step: &str) -> Result<String, RemoteError> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| RemoteError::BadAnswer {
            step: step.to_string(),
            reason: format!("no {name:?} string"),
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
