//! Helpers of the hostile suites (which run `railgun serve` as a [`crate::support::ChildServer`]):
//! raw HTTP/1.1 over TCP, for the requests no HTTP library sends as written (backslashes,
//! `..`, half a request head), and the event count a server reports.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The head (status line and header lines), lower-cased.
    pub head: String,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }
}

/// Sends `GET TARGET` as written (`Connection: close`) and reads the whole answer
/// (10 s at most).
pub async fn raw_get(addr: SocketAddr, method: &str, target: &[u8]) -> RawResponse {
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    raw_request(addr, &req).await
}

/// Sends `request` as is and reads until the server closes (10 s at most).
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let work = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(request).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        buf
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no complete answer within 10 s to {:?}",
                String::from_utf8_lossy(&request[..request.len().min(200)])
            )
        });
    parse_response(&buf)
}

/// Splits a raw HTTP/1.1 response (`Content-Length` or close-delimited body).
pub fn parse_response(buf: &[u8]) -> RawResponse {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    RawResponse {
        status,
        head,
        body: buf[end + 4..].to_vec(),
    }
}

/// Reads what the server sends on `s` until it closes the connection, `within` at most;
/// the bytes read, or `None` when it was still open at the deadline.
pub async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<usize> {
    let drain = async {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    };
    tokio::time::timeout(within, drain).await.ok()
}

/// Events named `name` the server counts (`GET /analytics/features`, summed over its days).
pub async fn events_named(base: &str, read_token: &str, name: &str) -> u64 {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/analytics/features?name={name}"))
        .bearer_auth(read_token)
        .send()
        .await
        .expect("features")
        .json()
        .await
        .expect("json");
    v["days"]
        .as_array()
        .unwrap_or_else(|| panic!("no days in {v}"))
        .iter()
        .map(|d| d["events"].as_u64().expect("events"))
        .sum()
}
