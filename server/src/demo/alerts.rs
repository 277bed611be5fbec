//! The demo's alert receiver: a JSON webhook on loopback, in the demo's process, that the
//! demo's server delivers its alerts to (through the durable outbox, as in production).
//!
//! Owns [`AlertReceiver`] and [`SentAlert`] (one line of the report's alert table and of
//! `--json`'s `alerts`). It refuses nothing: whatever the server posts is listed, in the
//! order it arrived.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::DemoError;
use crate::alerts::{AlertConfig, Destination};

/// One alert the server sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SentAlert {
    /// `rollout_halted`, `high_error_rate`, `low_adoption`, `analytics_backlog`.
    pub kind: String,
    /// The specification's name (`Rollout Halted`, …).
    pub name: String,
    /// `critical`, `warning`, `info`.
    pub severity: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// When it was raised (the demo's clock), RFC 3339.
    pub at: String,
    /// One line.
    pub title: String,
}

impl SentAlert {
    fn of(v: &Value) -> Self {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Self {
            kind: s("kind"),
            name: s("name"),
            severity: s("severity"),
            status: s("status"),
            at: s("at"),
            title: s("title"),
        }
    }
}

type Received = Arc<Mutex<Vec<SentAlert>>>;

async fn receive(State(got): State<Received>, Json(v): Json<Value>) -> StatusCode {
    got.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(SentAlert::of(&v));
    StatusCode::NO_CONTENT
}

/// The receiver; stops with the demo's process.
pub(super) struct AlertReceiver {
    addr: SocketAddr,
    got: Received,
    task: tokio::task::JoinHandle<()>,
}

impl AlertReceiver {
    /// Listens on a free loopback port.
    pub(super) async fn start() -> Result<Self, DemoError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| DemoError::Io {
                path: "alert receiver on 127.0.0.1".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| DemoError::Io {
            path: "alert receiver on 127.0.0.1".into(),
            source,
        })?;
        let got = Received::default();
        let app = Router::new()
            .route("/alerts", post(receive))
            .with_state(got.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, got, task })
    }

    /// How the demo's server delivers to it: a JSON webhook, retried quickly.
    pub(super) fn config(&self) -> AlertConfig {
        AlertConfig {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            poll: Duration::from_millis(50),
            ..AlertConfig::new(vec![Destination::Json {
                url: format!("http://{}/alerts", self.addr),
            }])
        }
    }

    /// Every alert received so far, in arrival order.
    pub(super) fn received(&self) -> Vec<SentAlert> {
        self.got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for AlertReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
