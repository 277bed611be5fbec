//! `railgun config publish|rollback|history`: the publisher's side of the hosted remote
//! config (`railgun serve`'s `/admin/config/{app}` routes, admin token from
//! `RAILGUN_ADMIN_TOKEN`).
//!
//! Without `--key` the server stamps the revision and signs with its own config key; with
//! `--key` the document is signed here (the revision, the current one + 1, inside the signed
//! payload) and the server only verifies it. It refuses to sign a document that is not a
//! valid config, and never prints the token.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use clap::{Args as ClapArgs, Subcommand};
use railgun_core::flags::sign_config;
use railgun_core::flags::stream::with_revision;
use railgun_core::trust::{Envelope, PrivateKey};
use serde_json::Value;
use url::Url;

use super::CliResult;

/// `railgun config …`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store a config document as the app's next revision (pushed to every open stream).
    Publish(PublishArgs),
    /// Republish an older revision as a new revision.
    Rollback(RollbackArgs),
    /// List the stored revisions, newest first.
    History(HistoryArgs),
}

/// Where and for which app.
#[derive(Debug, ClapArgs)]
pub struct Target {
    /// Base URL of the railgun server.
    #[arg(long, env = "RAILGUN_URL")]
    pub server: String,
    /// The app whose config this is.
    #[arg(long, env = "RAILGUN_APP")]
    pub app: String,
}

/// `railgun config publish`.
#[derive(Debug, ClapArgs)]
pub struct PublishArgs {
    #[command(flatten)]
    target: Target,
    /// The config document (the remote-config JSON).
    #[arg(long)]
    pub file: PathBuf,
    /// Sign here with this config key (PKCS#8 PEM) instead of the server's.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// `railgun config rollback`.
#[derive(Debug, ClapArgs)]
pub struct RollbackArgs {
    #[command(flatten)]
    target: Target,
    /// The revision to republish.
    #[arg(long)]
    pub to: u64,
    /// Sign here with this config key instead of the server's.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// `railgun config history`.
#[derive(Debug, ClapArgs)]
pub struct HistoryArgs {
    #[command(flatten)]
    target: Target,
    /// Revisions shown.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub async fn run(c: Command) -> CliResult {
    match c {
        Command::Publish(a) => publish(a).await,
        Command::Rollback(a) => rollback(a).await,
        Command::History(a) => history(a).await,
    }
}

struct Admin {
    http: reqwest::Client,
    base: Url,
    app: String,
    token: String,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

impl Admin {
    fn new(t: &Target) -> Result<Self, Error> {
        let token = std::env::var("RAILGUN_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or("set RAILGUN_ADMIN_TOKEN to the server's admin token")?;
        let base = railgun_core::net::http_url(&t.server)
            .map_err(|e| format!("--server {:?}: {e}", t.server))?;
        let http = railgun_core::net::client(
            &format!("railgun/{} (config)", env!("CARGO_PKG_VERSION")),
            std::time::Duration::from_secs(10),
            Some(std::time::Duration::from_secs(60)),
        )?;
        Ok(Self {
            http,
            base,
            app: t.app.clone(),
            token,
        })
    }

    fn url(&self, rest: &[&str]) -> Result<Url, Error> {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .map_err(|_| format!("--server {}: not a base URL", self.base))?
            .pop_if_empty()
            .extend(["admin", "config", &self.app])
            .extend(rest);
        Ok(u)
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Vec<u8>, Error> {
        let res = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("{what}: {}", railgun_core::error::chain(&e.without_url())))?;
        let status = res.status();
        let body = res.bytes().await.unwrap_or_default().to_vec();
        if !status.is_success() {
            let msg = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
            return Err(format!("{what}: the server answered {status}: {msg}").into());
        }
        Ok(body)
    }

    async fn current_revision(&self) -> Result<u64, Error> {
        let body = self
            .send(
                self.http.get(with_limit(self.url(&["history"])?, 1)),
                "history",
            )
            .await?;
        let v: Value = serde_json::from_slice(&body)?;
        Ok(v["revisions"]
            .get(0)
            .and_then(|r| r["revision"].as_u64())
            .unwrap_or(0))
    }

    /// Signs `payload` at the next revision with `key` and publishes it; retried once
    /// when another publisher took that revision first.
    async fn publish_signed(&self, payload: &[u8], key: &PrivateKey) -> Result<Value, Error> {
        let mut last = None;
        for _ in 0..2 {
            let next = self.current_revision().await? + 1;
            let doc = with_revision(payload, next)?;
            let env = sign_config(&doc, &[key])?;
            match self.publish_raw(serde_json::to_vec(&env)?).await {
                Ok(v) => return Ok(v),
                Err(e) if e.to_string().contains("409") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| "publish failed".into()))
    }

    async fn publish_raw(&self, body: Vec<u8>) -> Result<Value, Error> {
        let body = self
            .send(
                self.http
                    .post(self.url(&[])?)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body),
                "publish",
            )
            .await?;
        Ok(serde_json::from_slice(&body)?)
    }
}

fn with_limit(mut u: Url, limit: u32) -> Url {
    u.query_pairs_mut().append_pair("limit", &limit.to_string());
    u
}

fn load_key(p: &PathBuf) -> Result<PrivateKey, Error> {
    PrivateKey::from_file(p).map_err(|e| format!("--key {}: {e}", p.display()).into())
}

fn print_revision(v: &Value, verb: &str) {
    let rev = v["revision"].as_u64().unwrap_or(0);
    let signed = if v["signed"].as_bool() == Some(true) {
        "signed"
    } else {
        "unsigned"
    };
    let of = v["rollbackOf"]
        .as_u64()
        .map(|n| format!(" (republishes revision {n})"))
        .unwrap_or_default();
    println!(
        "{verb} {} revision {rev}{of}, {signed}, etag {}",
        v["app"].as_str().unwrap_or("?"),
        v["etag"].as_str().unwrap_or("?")
    );
}

async fn publish(a: PublishArgs) -> CliResult {
    let admin = Admin::new(&a.target)?;
    let doc = std::fs::read(&a.file).map_err(|e| format!("--file {}: {e}", a.file.display()))?;
    let v = match &a.key {
        Some(k) => admin.publish_signed(&doc, &load_key(k)?).await?,
        None => admin.publish_raw(doc).await?,
    };
    print_revision(&v, "published");
    Ok(ExitCode::SUCCESS)
}

async fn rollback(a: RollbackArgs) -> CliResult {
    let admin = Admin::new(&a.target)?;
    let v = match &a.key {
        None => {
            let body = serde_json::to_vec(&serde_json::json!({ "to": a.to }))?;
            let res = admin
                .send(
                    admin
                        .http
                        .post(admin.url(&["rollback"])?)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body),
                    "rollback",
                )
                .await?;
            serde_json::from_slice(&res)?
        }
        Some(k) => {
            let key = load_key(k)?;
            let raw = admin
                .send(
                    admin
                        .http
                        .get(admin.url(&["revisions", &a.to.to_string()])?),
                    "read revision",
                )
                .await?;
            let payload = match serde_json::from_slice::<Envelope>(&raw) {
                Ok(env) => base64::engine::general_purpose::STANDARD
                    .decode(env.payload.as_bytes())
                    .map_err(|e| format!("revision {}: envelope payload: {e}", a.to))?,
                Err(_) => raw,
            };
            let mut v = admin.publish_signed(&payload, &key).await?;
            v["rollbackOf"] = Value::from(a.to);
            v
        }
    };
    print_revision(&v, "rolled back: published");
    Ok(ExitCode::SUCCESS)
}

async fn history(a: HistoryArgs) -> CliResult {
    let admin = Admin::new(&a.target)?;
    let body = admin
        .send(
            admin
                .http
                .get(with_limit(admin.url(&["history"])?, a.limit)),
            "history",
        )
        .await?;
    let v: Value = serde_json::from_slice(&body)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in v["revisions"].as_array().into_iter().flatten() {
        let of = r["rollbackOf"]
            .as_u64()
            .map(|n| format!("  rollback of {n}"))
            .unwrap_or_default();
        println!(
            "{:>6}  {}  {}  {}{of}",
            r["revision"].as_u64().unwrap_or(0),
            r["publishedAt"].as_str().unwrap_or("?"),
            if r["signed"].as_bool() == Some(true) {
                "signed  "
            } else {
                "unsigned"
            },
            r["etag"].as_str().unwrap_or("?"),
        );
    }
    Ok(ExitCode::SUCCESS)
}
