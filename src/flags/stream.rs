//! The live config stream: the revision a config document carries, and the Server-Sent
//! Events wire format (`GET /config/{app}/stream`) the client reads.
//!
//! Owns [`revision_of`] / [`with_revision`] (the `"revision"` field inside the signed
//! payload, so a replayed older document is detectable by the client), [`stream_url`] (the
//! stream next to a `…/config/{app}.json` URL) and [`SseParser`] (an incremental parser of
//! `text/event-stream`: `event:`, `id:`, `data:` lines, comment lines as heartbeats).
//!
//! It refuses an event larger than its limit (the parser errors instead of growing without
//! bound) and a revision that is not a positive integer.

use serde_json::Value;

use super::schema::RemoteConfig;

/// The payload field that carries the revision number.
pub const REVISION_FIELD: &str = "revision";

/// The revision a config carries (`"revision": N`, N ≥ 1), if any.
pub fn revision_of(config: &RemoteConfig) -> Option<u64> {
    config
        .extra
        .get(REVISION_FIELD)
        .and_then(Value::as_u64)
        .filter(|n| *n >= 1)
}

/// Why [`with_revision`] refused a document.
#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    /// The bytes are not JSON.
    #[error("config document is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is not an object.
    #[error("config document is not a JSON object")]
    NotObject,
}

/// `json` (a config document) with `"revision": revision` set, as one compact line.
pub fn with_revision(json: &[u8], revision: u64) -> Result<Vec<u8>, RevisionError> {
    let mut v: Value = serde_json::from_slice(json)?;
    let obj = v.as_object_mut().ok_or(RevisionError::NotObject)?;
    obj.insert(REVISION_FIELD.into(), Value::from(revision));
    Ok(serde_json::to_vec(&v)?)
}

/// The stream URL of a config URL that ends in `/config/{app}.json` (what `railgun serve`
/// hosts); `None` for any other URL (static hosting: the client polls).
pub fn stream_url(config_url: &url::Url) -> Option<url::Url> {
    let path = config_url.path();
    let (dir, file) = path.rsplit_once('/')?;
    let app = file.strip_suffix(".json")?;
    if app.is_empty() || !dir.ends_with("/config") {
        return None;
    }
    let mut u = config_url.clone();
    u.set_path(&format!("{dir}/{app}/stream"));
    u.set_query(None);
    Some(u)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// `event:` (empty means `message`).
    pub event: String,
    /// `id:` of this event, if it set one.
    pub id: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// What [`SseParser::push`] found in the bytes given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A complete event.
    Event(SseEvent),
    /// A comment line (the server's heartbeat).
    Comment,
}

/// An event grew past the parser's limit.
#[derive(Debug, thiserror::Error)]
#[error("server-sent event larger than {limit} bytes: refused")]
pub struct SseTooLarge {
    /// The limit.
    pub limit: usize,
}

/// Incremental `text/event-stream` parser (WHATWG HTML §9.2.6), bounded.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    current: SseEvent,
    has_data: bool,
    size: usize,
    limit: usize,
    skip_lf: bool,
}

impl SseParser {
    /// A parser refusing events (and lines) larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            current: SseEvent::default(),
            has_data: false,
            size: 0,
            limit,
            skip_lf: false,
        }
    }

    /// Feeds bytes; returns the events and comments completed by them, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseItem>, SseTooLarge> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' => {
                    self.skip_lf = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(item) = self.line_done(&line) {
                        out.push(item);
                    }
                }
                _ => {
                    self.line.push(b);
                    self.size += 1;
                    if self.size > self.limit {
                        return Err(SseTooLarge { limit: self.limit });
                    }
                }
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseItem> {
        if line.is_empty() {
            self.size = 0;
            let ev = std::mem::take(&mut self.current);
            let had = std::mem::replace(&mut self.has_data, false);
            return had.then_some(SseItem::Event(ev));
        }
        if line[0] == b':' {
            if self.current == SseEvent::default() && !self.has_data {
                self.size = 0;
            }
            return Some(SseItem::Comment);
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*text, ""),
        };
        match field {
            "event" => self.current.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.current.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_reads_events_split_anywhere_and_reports_heartbeats() {
        let wire = b": heartbeat\n\nevent: config\nid: 7\ndata: {\"a\":1}\n\r\n";
        for cut in 0..wire.len() {
            let mut p = SseParser::new(1024);
            let mut items = p.push(&wire[..cut]).expect("a");
            items.extend(p.push(&wire[cut..]).expect("b"));
            assert_eq!(
                items,
                vec![
                    SseItem::Comment,
                    SseItem::Event(SseEvent {
                        event: "config".into(),
                        id: Some("7".into()),
                        data: "{\"a\":1}".into()
                    })
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn parser_refuses_an_event_past_its_limit() {
        let mut p = SseParser::new(16);
        assert!(p.push(&[b'x'; 17]).is_err());
    }

    #[test]
    fn stream_url_is_derived_only_from_a_served_config_url() {
        let u = url::Url::parse("https://h/config/rail-gun.json?x=1").expect("u");
        assert_eq!(
            stream_url(&u).map(|u| u.to_string()).as_deref(),
            Some("https://h/config/rail-gun/stream")
        );
        let s = url::Url::parse("https://cdn/rail-gun/config.json").expect("s");
        assert_eq!(stream_url(&s), None);
    }

    #[test]
    fn revision_is_stamped_and_read_back() {
        let doc = with_revision(br#"{"version":"1","flags":{}}"#, 12).expect("stamp");
        let c = RemoteConfig::parse(&doc).expect("parse");
        assert_eq!(revision_of(&c), Some(12));
        assert!(!doc.contains(&b'\n'));
    }
}

/// How a stream connection ended.
#[derive(Debug)]
pub(crate) enum StreamEnd {
    /// It was open and then ended (the server went away, a heartbeat was missed).
    Dropped,
    /// It never opened: the server does not offer it, refused, or is unreachable.
    Refused {
        /// Why, for the log.
        reason: String,
        /// The server's `Retry-After`, if any.
        retry_after: Option<std::time::Duration>,
    },
    /// The client is gone.
    Closed,
}

/// Reads one stream connection: `GET url` with `Last-Event-ID: last_id` (when not 0), each
/// event handed to `on_event` (which returns `false` once the client is gone); ends when
/// nothing (not even a heartbeat) arrived for `idle`, or when `alive` closes.
pub(crate) async fn read_stream(
    http: &reqwest::Client,
    url: &url::Url,
    last_id: u64,
    idle: std::time::Duration,
    max_event: usize,
    alive: &mut tokio::sync::watch::Receiver<u64>,
    mut on_event: impl FnMut(SseEvent) -> bool,
) -> StreamEnd {
    let mut req = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if last_id > 0 {
        req = req.header("Last-Event-ID", last_id.to_string());
    }
    let mut resp = match tokio::time::timeout(idle, req.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return StreamEnd::Refused {
                reason: crate::error::chain(&e).to_string(),
                retry_after: None,
            }
        }
        Err(_) => {
            return StreamEnd::Refused {
                reason: "no answer in time".into(),
                retry_after: None,
            }
        }
    };
    let is_sse = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !resp.status().is_success() || !is_sse {
        return StreamEnd::Refused {
            reason: format!(
                "the server answered {} without an event stream",
                resp.status()
            ),
            retry_after: crate::net::retry_after_secs(resp.headers())
                .map(std::time::Duration::from_secs),
        };
    }
    let mut parser = SseParser::new(max_event);
    loop {
        let chunk = tokio::select! {
            c = tokio::time::timeout(idle, resp.chunk()) => c,
            r = alive.changed() => {
                if r.is_err() {
                    return StreamEnd::Closed;
                }
                continue;
            }
        };
        let bytes = match chunk {
            Ok(Ok(Some(b))) => b,
            // Timed out (no heartbeat), ended, or failed: reconnect.
            _ => return StreamEnd::Dropped,
        };
        let items = match parser.push(&bytes) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "config stream refused");
                return StreamEnd::Dropped;
            }
        };
        for item in items {
            if let SseItem::Event(e) = item {
                if !on_event(e) {
                    return StreamEnd::Closed;
                }
            }
        }
    }
}
