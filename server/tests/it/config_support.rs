//! The hosted config's fixture, shared by the server suite (`config_server`) and the client
//! suite (`config_client`): a test server holding a config key, the document both publish,
//! `POST /admin/config/{app}` and the verified read of `GET /config/{app}.json`.

use chrono::Utc;
use railgun_core::flags::RemoteConfig;
use railgun_core::trust::{KeyAlgorithm, PrivateKey, TrustedKeys, PAYLOAD_CONFIG};
use railgun_server::serve::ServerConfig;
use serde_json::{json, Value};

use crate::db::Kind;
use crate::support::{within, TestServer, ADMIN};

/// The app every config test publishes for.
pub const APP: &str = "rail-gun";

/// A remote config with the kill switch `kill` (its message "Stop now") and one flag.
pub fn doc(kill: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "1.0.0",
        "emergencyKillSwitch": kill,
        "emergencyMessage": if kill { "Stop now" } else { "" },
        "flags": {"new-composer": {"enabled": true, "rolloutPercentage": 100}}
    }))
    .expect("json")
}

/// A server on `kind` whose config key (returned) is written to its temp dir, with `tweak`
/// applied last (given that dir); `None` when PostgreSQL is not configured (`suite` then
/// says SKIP).
pub async fn server(
    kind: Kind,
    suite: &str,
    tweak: impl FnOnce(&mut ServerConfig, &std::path::Path),
) -> Option<(TestServer, PrivateKey)> {
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let pem = key.to_pem();
    let s = TestServer::with(kind, suite, Utc::now(), move |c| {
        let dir = c.root.parent().expect("dir").to_path_buf();
        let path = dir.join("config.key");
        std::fs::write(&path, pem).expect("key file");
        c.config_key = Some(path);
        tweak(c, &dir);
    })
    .await?;
    Some((s, key))
}

/// `POST /admin/config/{APP}` with the admin token, whatever the answer.
pub async fn publish_raw(s: &TestServer, body: Vec<u8>) -> reqwest::Response {
    within(
        "publish",
        s.http
            .post(format!("{}/admin/config/{APP}", s.url))
            .bearer_auth(ADMIN)
            .body(body)
            .send(),
    )
    .await
    .expect("publish")
}

/// [`publish_raw`], which must answer 201: its JSON.
pub async fn publish(s: &TestServer, body: Vec<u8>) -> Value {
    let r = publish_raw(s, body).await;
    let status = r.status();
    let v: Value = within("publish body", r.json()).await.expect("json");
    assert_eq!(status, 201, "{v}");
    v
}

/// The body of `GET /config/{APP}.json` (the signed document the server hosts).
pub async fn hosted(s: &TestServer) -> String {
    let r = s.get(&format!("/config/{APP}.json"), None).await;
    within("config body", r.text()).await.expect("body")
}

/// `document` verified with `key`'s public half, and parsed.
pub fn verified(key: &PrivateKey, document: &str) -> RemoteConfig {
    let v = TrustedKeys::single(key.public_key().clone())
        .verify(document.as_bytes(), PAYLOAD_CONFIG)
        .expect("signed by the server's config key");
    RemoteConfig::parse(&v.payload).expect("config")
}
